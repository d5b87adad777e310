"""Helpers for integration tests: run commands, modules and playbooks through the real tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def run(argv: list[str], *, check: bool = True, timeout: int = 900, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with an argv list; on failure the assertion shows its output."""
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv!r} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"),
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    return env


def run_module(module: str, args: dict, *, check_mode: bool = False, diff: bool = False) -> dict:
    """Run one module on localhost through ansible itself and return its result (dict).

    ``failed`` results are returned, not raised, so tests can assert on error messages.
    """
    argv = [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", module, "-a", json.dumps(args)]
    if check_mode:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    proc = run(argv, check=False, env=ansible_env())
    try:
        out = json.loads(proc.stdout)
        return out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(f"no module result from {argv!r}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}") from exc


def run_playbook(playbook: Path, extra_vars: dict | None = None, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a playbook against localhost with the venv's ansible-playbook (default output callback)."""
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = ansible_env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    return run(argv, check=check, env=env)
