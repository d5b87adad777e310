# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The engine's daemon.json: merge, render, read, write, and the engine's own check before a file is written.

Everything except :func:`read`, :func:`write`, :class:`EngineCheck` and :class:`DaemonJsonManager` (the
``daemon_json`` module's run) is pure and unit-tested on captured output of real engines
(tests/unit/fixtures/daemon_json).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

DOCKERD_PATHS = ("/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd")
# Engines without --validate (before Docker 23) load and check the configuration, then stop with this when
# they are not root - before they create a file or open a socket.
ROOT_REFUSAL = "needs to be started with root"
UNPRIVILEGED_UID = 65534  # nobody
CHECK_SECONDS = 30


class DaemonJsonError(Exception):
    """The file cannot be read, checked or written; the message says what to fix."""


def merged(current: dict, settings: dict) -> dict:
    """``settings`` over ``current``: objects merged key by key, any other value replaced (as Jinja's
    ``combine(recursive=True)`` does)."""
    result = dict(current)
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def render(config: dict) -> str:
    """The file's text: sorted keys, two-space indent, a final newline (what ``to_nice_json(indent=2)`` writes)."""
    return json.dumps(config, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def parse(text: str, path: str) -> dict:
    """The file's configuration; an empty file is ``{}``."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError(
            f"{path} is not valid JSON ({exc}); fix or remove it - the engine cannot start with it either."
            " Nothing was written"
        ) from None
    if not isinstance(config, dict):
        raise DaemonJsonError(
            f"{path} holds a JSON {type(config).__name__}, not an object; the engine needs an object of settings."
            " Nothing was written"
        )
    return config


# ---------------------------------------------------------------------------------------------- the check


def check_argv(dockerd: str, help_text: str, config_path: str, euid: int, setpriv: str | None) -> list | None:
    """How to have this engine check a configuration file, or None when it cannot be done safely.

    ``dockerd --validate`` where the engine has it (Docker 23 and newer); otherwise the engine's own start
    as an unprivileged user, which loads and checks the file and stops at its root check. As root that start
    must be made unprivileged (``setpriv``), else it would really start an engine.
    """
    if "--validate" in help_text:
        return [dockerd, "--validate", "--config-file", config_path]
    start = [dockerd, "--config-file", config_path]
    if euid != 0:
        return start
    if not setpriv:
        return None
    return [setpriv, f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups", "--", *start]


def check_problem(argv: list, answer: tuple, config_path: str, path: str) -> str:
    """'' when the engine accepted the configuration, else its own words, naming ``path`` not the copy.

    ``answer`` is the check's (rc, stdout, stderr).
    """
    rc, out, err = answer
    text = f"{err}\n{out}"
    if "--validate" in argv:
        if rc == 0:
            return ""
    elif ROOT_REFUSAL in text:
        return ""
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not re.match(r'^time="[^"]*" level=(info|debug|warning)\b', line.strip())
    ]
    words = "; ".join(lines) or f"it exited {rc} without a message"
    return words.replace(config_path, path)


class EngineCheck:
    """Runs the engine's check of a configuration on a private copy. ``run_command`` is AnsibleModule's."""

    def __init__(self, run_command, dockerd: str):
        self.run_command = run_command
        self.dockerd = dockerd

    @staticmethod
    def find(dockerd: str | None, get_bin_path) -> str | None:
        """The engine binary: the option's, else ``dockerd`` on PATH or in the usual places."""
        if dockerd:
            if not (os.path.isfile(dockerd) and os.access(dockerd, os.X_OK)):
                raise DaemonJsonError(f"dockerd {dockerd} is not an executable file; give the engine's dockerd binary")
            return dockerd
        found = get_bin_path("dockerd")
        return found or next((p for p in DOCKERD_PATHS if os.access(p, os.X_OK)), None)

    def problem(self, text: str, path: str) -> str | None:
        """The engine's objection to ``text`` as ``path`` ('' for none), or None when it could not be asked."""
        rc, help_text, _err = self.run_command([self.dockerd, "--help"])
        workdir = tempfile.mkdtemp(prefix="fleet-daemon-json-")
        config_path = os.path.join(workdir, "daemon.json")
        try:
            with open(config_path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(config_path, 0o600)
            argv = check_argv(
                self.dockerd, help_text if rc == 0 else "", config_path, os.geteuid(), shutil.which("setpriv")
            )
            if argv is None:
                return None
            if argv[0] != self.dockerd:  # the unprivileged start reads the copy as that user
                for item in (workdir, config_path):
                    os.chown(item, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            timeout = shutil.which("timeout")
            if timeout:
                argv = [timeout, str(CHECK_SECONDS), *argv]
            return check_problem(argv, self.run_command(argv), config_path, path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- file I/O


def read(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DaemonJsonError(f"cannot read {path}: {exc}") from None


def write(module, path: str, text: str, exists: bool) -> None:
    """``text`` into ``path`` through a temporary file in the same directory, renamed over it."""
    directory = os.path.dirname(path) or "."
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
            module.set_mode_if_different(directory, "0755", False)  # whatever the umask
        fd, tmp = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
    except OSError as exc:
        raise DaemonJsonError(f"cannot write in {directory}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        module.atomic_move(tmp, path)  # keeps an existing file's owner, mode and SELinux context
        if not exists:
            module.set_mode_if_different(path, "0644", False)  # whatever the umask
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class DaemonJsonManager:
    """The ``daemon_json`` module: merge the settings into the file, check the result with the engine, write it."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]
        self.result = {"changed": False, "path": self.path}
        self.diff = None

    def check_with_engine(self, text: str) -> None:
        """Refuse, before anything is written, a configuration the engine would not start with."""
        path = self.path
        dockerd = EngineCheck.find(self.params["dockerd"], self.module.get_bin_path)
        if dockerd is None:
            self.module.warn(f"no dockerd on this host to check {path} with: written without the engine's check")
            return
        problem = EngineCheck(self.module.run_command, dockerd).problem(text, path)
        if problem is None:
            self.module.warn(
                f"{dockerd} has no --validate and setpriv is missing: {path} written without the engine's check"
            )
        elif problem:
            raise DaemonJsonError(
                f"the engine ({dockerd}) refuses the merged settings: {problem}. {path} was left as it was; fix the"
                " setting (https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file lists them),"
                " or set validate: false to write it anyway"
            )

    def run(self) -> dict:
        path = self.path
        if os.path.isdir(path):
            raise DaemonJsonError(f"{path} is a directory; give the path of the daemon.json file")
        before_text = read(path)
        current = parse(before_text or "", path)
        config = merged(current, self.params["settings"])
        self.result["config"] = config
        if before_text is not None and config == current:
            return self.result
        after_text = render(config)
        if self.params["validate"]:
            self.check_with_engine(after_text)
        self.diff = {
            "before_header": path,
            "after_header": path,
            "before": before_text if before_text is not None else "",
            "after": after_text,
        }
        if not self.module.check_mode:
            if self.params["backup"] and before_text is not None:
                self.result["backup_file"] = self.module.backup_local(path)
            # through a symbolic link to the file it points to, which keeps the link
            write(self.module, os.path.realpath(path), after_text, exists=before_text is not None)
        self.result["changed"] = True
        return self.result
