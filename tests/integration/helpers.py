"""Helpers for integration tests: run commands, modules and playbooks through the real tools."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError

VENV_BIN = Path(sys.executable).parent


def run(argv: list[str], *, check: bool = True, timeout: int = 900, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with an argv list; on failure the assertion shows its output."""
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv!r} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def clean_env(**extra: str) -> dict:
    """``os.environ`` without the caller's ANSIBLE_* settings, with ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(extra)
    return env


def play_recap(output: str) -> dict:
    """The PLAY RECAP of ansible-playbook's output: ``{host: {"ok": n, "changed": n, ...}}``."""
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)
    }


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"),
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="fleet_result",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    return env


def recorded_results(argv: list, env: dict | None = None) -> list[dict]:
    """Run an ``ansible``/``ansible-playbook`` argv and return every task result the test callback recorded.

    The results are recorded whole by ``callback_plugins/fleet_result.py`` (with ``diff``, which stdout
    callbacks drop), in order. An AssertionError with the output when there is none.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "results.jsonl")
        proc = run(argv, check=False, env={**ansible_env(), **(env or {}), "FLEET_TEST_RESULT_FILE": str(out)})
        try:
            results = [json.loads(line) for line in out.read_text().splitlines()]
        except (OSError, ValueError):
            results = []
        if not results:
            raise AssertionError(f"no results from {argv!r}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return results


def run_module(
    module: str, args: dict, *, check_mode: bool = False, diff: bool = False, env: dict | None = None
) -> dict:
    """Run one module on localhost through ansible itself and return its result (dict).

    Argument parsing, check mode and diff go through Ansible as in a user's play. ``failed`` results
    are returned, not raised, so tests can assert on error messages.
    """
    argv = [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", module]
    if args:
        argv += ["-a", json.dumps(args)]
    argv += (["--check"] if check_mode else []) + (["--diff"] if diff else [])
    return recorded_results(argv, env)[-1]


def playbook_argv(playbook: Path) -> list:
    """``ansible-playbook`` of the venv against localhost, connection local."""
    return [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]


def run_playbook(playbook: Path, extra_vars: dict | None = None, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a playbook against localhost with the venv's ansible-playbook (default output callback)."""
    argv = playbook_argv(playbook)
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    return run(argv, check=check, env=ansible_env())


def playbook_results(playbook: Path, *, check_mode: bool = False, diff: bool = False) -> list[dict]:
    """Run a playbook against localhost and return every task result, whole and in order."""
    argv = playbook_argv(playbook) + (["--check"] if check_mode else []) + (["--diff"] if diff else [])
    return recorded_results(argv)


def qemu_processes_of(state: Path) -> list[str]:
    """``pid: command line`` of the QEMU system emulators using a disk under ``state`` (a fleet state directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline.startswith("qemu-system-") and str(state) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def purge_repository(client, name: str) -> None:
    """Delete every tagged manifest of a test's own repository (one already gone is fine)."""
    for tag in client.list_tags(name):
        head = client.head_manifest(name, tag)
        if head and head["digest"]:
            try:
                client.delete_manifest(name, head["digest"])
            except RegistryError as exc:
                if exc.status != 404:
                    raise


class DyingRelay:
    """A TCP relay on 127.0.0.1 to a real server (a registry) that dies when a request it relays matches.

    ``trigger(head)`` is given the first bytes of each request a client sends (up to 64 KiB, headers included);
    once the relay is ``armed`` and it returns true, the relay dies as a server does: the request is not passed
    on, every connection is cut and the port stops listening. ``revive()`` listens again on the same port.
    """

    def __init__(self, target: tuple, trigger):
        self.target = target
        self.trigger = trigger
        self.armed = False
        self.died = threading.Event()
        self._sockets: set = set()
        self._lock = threading.Lock()
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self.port = self._server.getsockname()[1]
        self._server.listen(64)
        self.died.clear()
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def revive(self) -> None:
        self.armed = False
        self._listen()

    def die(self) -> None:
        self.died.set()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in [self._server, *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def matched(self, client, upstream) -> bool:
        """The trigger matched: die. True: the connection is done with."""
        self.die()
        return True

    def _accept(self, server) -> None:
        while True:
            try:
                client, _address = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src, dst, from_client: bool) -> None:
        head = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self.armed:
                    head = (head + data)[-65536:]
                    if self.trigger(head) and self.matched(src, dst):
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


class AnsweringRelay(DyingRelay):
    """A relay that answers ``count`` matching requests itself, as a registry in trouble does, with ``status``
    (``500 Internal Server Error``) and closes that connection; everything else reaches the real server.
    ``answered`` counts the requests it answered."""

    def __init__(self, target: tuple, trigger, status: str = "500 Internal Server Error", count: int = 1):
        super().__init__(target, trigger)
        self.status = status
        self.left = count
        self.answered = 0

    def matched(self, client, upstream) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            self.answered += 1
        with contextlib.suppress(OSError):
            client.sendall(f"HTTP/1.1 {self.status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return True
