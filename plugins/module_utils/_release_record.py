# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The release record: one schema, written and read by this code only.

The ``release`` action plugin writes it on the controller (:meth:`ReleaseRecord.write`) from what the
``release`` module returns; the rollout reads it (the ``release_record`` lookup and the ``rollout_target``
filter, through :meth:`ReleaseRecord.load` and :meth:`ReleaseRecord.from_dict`). Its keys are described in
``docs/release.md``. A reader accepts keys it does not know and keeps them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import ImageReferenceError, parse_reference

SCHEMA = 1
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# What tells two records of the same release apart without being part of the release.
RUN_KEYS = ("created", "changed")


class ReleaseRecordError(ValueError):
    """A record that is not a usable release record; the message names where it came from and what is wrong."""


def check_repository(repository) -> str:
    """``repository`` if it is ``host[:port]/path`` without tag or digest, else ReleaseRecordError."""
    problem = ""
    if not isinstance(repository, str) or "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        problem = "it has a tag or a digest" if isinstance(repository, str) else "it is not a string"
    else:
        try:
            parse_reference(repository)
        except ImageReferenceError as exc:
            problem = str(exc)
    if problem:
        raise ReleaseRecordError(
            f"repository {repository!r} must be an image repository with its registry host and without a tag or"
            f" digest, for example 127.0.0.1:5000/fleet/demo-app ({problem})"
        )
    return repository


def _text(data: dict, key: str, where: str, default: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ReleaseRecordError(f"{where}: {key} must be a string, not {value!r}")
    return value


def _digest(value, what: str, where: str) -> str:
    if not isinstance(value, str) or not DIGEST_RE.match(value):
        raise ReleaseRecordError(f"{where}: {what} must be a digest sha256:<64 hex digits>, not {value!r}")
    return value


def _mapping(data: dict, key: str, where: str, check) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ReleaseRecordError(f"{where}: {key} must map platforms to values, not {value!r}")
    return {k: check(v, f"{key}[{k}]") for k, v in value.items()}


def _size(value, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReleaseRecordError(f"{where}: {what} must be a number of bytes, not {value!r}")
    return value


def _flag(data: dict, key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ReleaseRecordError(f"{where}: {key} must be true or false, not {value!r}")
    return value


class ReleaseRecord:
    """A validated release record (schema 1). ``data`` is the JSON object, unknown keys included."""

    def __init__(self, data: dict, source: str = "the release record"):
        self.source = source
        self.data = self.validated(data, source)

    @staticmethod
    def validated(data, where: str) -> dict:
        if not isinstance(data, dict):
            raise ReleaseRecordError(f"{where} is not a JSON object but {type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA or isinstance(schema, bool):
            raise ReleaseRecordError(
                f"{where} has schema {schema!r}; this collection reads and writes schema {SCHEMA}. Write it again"
                " with the fleet.multiarch.release role of this collection"
            )
        missing = [key for key in ("repository", "index_digest") if not data.get(key)]
        if missing:
            raise ReleaseRecordError(f"{where} has no {' and no '.join(missing)}")
        try:
            check_repository(data["repository"])
        except ReleaseRecordError as exc:
            raise ReleaseRecordError(f"{where}: {exc}") from None
        out = dict(data)
        out["index_digest"] = _digest(data["index_digest"], "index_digest", where)
        for key in ("name", "tag", "fingerprint", "git_commit", "created"):
            out[key] = _text(data, key, where)
        moving = data.get("moving_tags", [])
        if not isinstance(moving, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in moving):
            raise ReleaseRecordError(f"{where}: moving_tags must be a list of tags, not {moving!r}")
        out["moving_tags"] = list(moving)
        out["platforms"] = _mapping(data, "platforms", where, lambda v, what: _digest(v, what, where))
        out["sizes"] = _mapping(data, "sizes", where, lambda v, what: _size(v, what, where))
        out["git_dirty"] = _flag(data, "git_dirty", where)
        out["changed"] = _flag(data, "changed", where)
        return out

    @classmethod
    def from_dict(cls, data, source: str = "the release record") -> ReleaseRecord:
        return cls(data, source)

    @classmethod
    def load(cls, path: str) -> ReleaseRecord | None:
        """The record in file ``path``; None when there is no such file."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReleaseRecordError(f"cannot read the release record {path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ReleaseRecordError(
                f"the release record {path} is not JSON ({exc}): release again to write it anew, or remove it"
            ) from None
        return cls(data, f"the release record {path}")

    def __getattr__(self, key: str):
        try:
            return self.__dict__["data"][key]
        except KeyError:
            raise AttributeError(key) from None

    def to_dict(self) -> dict:
        return dict(self.data)

    def content(self) -> dict:
        """Everything but the keys of the run that wrote it (``created``, ``changed``)."""
        return {k: v for k, v in self.data.items() if k not in RUN_KEYS}

    def same_release(self, other: ReleaseRecord | None) -> bool:
        """The same index under the same immutable tag (``created`` stays)."""
        keys = ("repository", "tag", "index_digest")
        return other is not None and all(self.data[k] == other.data[k] for k in keys)

    def same_content(self, other: ReleaseRecord | None) -> bool:
        """Nothing to write: the same release, recorded the same way (moving tags, sizes, git state...)."""
        return other is not None and self.content() == other.content()

    def text(self) -> str:
        """The file's content: sorted keys, two spaces, a final newline (the same record, the same bytes)."""
        return json.dumps(self.data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, path: str) -> None:
        """Write the file atomically (a new file renamed over the old), mode 0644, its directory made 0755."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o755, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".release-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(self.text())
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
