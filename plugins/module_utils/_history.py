# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The deployment history of a container on the device: one JSON file, read and written only here.

:class:`History` reads the file and appends records to it (atomically, keeping the newest); the functions
below are the pure parts (parse, append, one record, the last record of a container).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile

from ansible_collections.fleet.multiarch.plugins.module_utils._rollout import RolloutError

HISTORY_DIR = "/var/lib/fleet-multiarch/rollout"
HISTORY_VERSION = 1
# The result of the record written before a swap begins (with the ids of the containers it moves); the record of
# how the swap ended takes its place. One still there when the next task starts means the swap was interrupted.
IN_PROGRESS = "in_progress"


class HistoryError(RolloutError):
    """The history file cannot be read or is not a history; the message says what to do."""


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def default_path(name: str) -> str:
    """Where the history of the container ``name`` is kept when no ``history_file`` is given."""
    return os.path.join(HISTORY_DIR, f"{name}.json")


class History:
    """The history file at ``path``, keeping the last ``size`` records; ``warn`` reports a file not written."""

    def __init__(self, path: str, size: int, warn):
        self.path = path
        self.size = size
        self.warn = warn

    def _text(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def read(self) -> dict:
        """The whole history; a missing file is an empty one. Raises :class:`HistoryError`."""
        try:
            return parse_history(self._text(), self.path)
        except OSError as exc:
            raise HistoryError(f"cannot read the history file {self.path}: {exc}") from None

    def last(self, name: str) -> dict | None:
        """The newest record of the container ``name``, or None."""
        return last_record(self.read(), name)

    def append(self, entry: dict) -> None:
        """Append ``entry`` (atomically); a file that cannot be written is a warning, not a failure."""
        path = self.path
        try:
            history = add_record(parse_history(self._text(), path), entry, self.size)
            directory = os.path.dirname(path) or "."
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".rollout-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(history, handle, indent=2)
                    handle.write("\n")
                    # on disk before it replaces the old file: a device that loses power keeps one of the two
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
                sync_directory(directory)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except (OSError, RolloutError) as exc:
            self.warn(f"the deployment history could not be written to {path}: {exc}")


def sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems refuse to open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parse_history(text: str, path: str) -> dict:
    """The history file's content; an empty or missing file is an empty history."""
    if not (text or "").strip():
        return {"version": HISTORY_VERSION, "deployments": []}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HistoryError(f"the history file {path} is not JSON ({exc}); move it away and run again") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise HistoryError(f"the history file {path} has no 'deployments' list; move it away and run again")
    return data


def add_record(history: dict, record: dict, size: int) -> dict:
    """A new history with ``record`` appended, keeping the last ``size`` records.

    When the newest record of the same container is :data:`IN_PROGRESS`, ``record`` (how that swap ended)
    takes its place.
    """
    records = list(history.get("deployments", []))
    mine = [i for i, r in enumerate(records) if r.get("container") == record.get("container")]
    if mine and records[mine[-1]].get("result") == IN_PROGRESS:
        del records[mine[-1]]
    records.append(record)
    if size > 0:
        records = records[-size:]
    return {**history, "version": HISTORY_VERSION, "deployments": records}


def new_record(
    *,
    when: str,
    name: str,
    action: str,
    result: str,
    reference: str = "",
    digest: str = "",
    previous_digest: str = "",
    platform: str = "",
    config_hash: str = "",
    health: dict | None = None,
    seconds: float = 0.0,
    detail: str = "",
) -> dict:
    """One history record. ``action`` says what was attempted, ``result`` how it ended."""
    return {
        "time": when,
        "container": name,
        "action": action,
        "result": result,
        "reference": reference,
        "digest": digest,
        "previous_digest": previous_digest,
        "platform": platform,
        "config_hash": config_hash,
        "health": (health or {}).get("status", ""),
        "seconds": round(seconds, 3),
        "detail": detail,
    }


def last_record(history: dict, name: str) -> dict | None:
    for record in reversed(history.get("deployments", [])):
        if record.get("container") == name:
            return record
    return None
