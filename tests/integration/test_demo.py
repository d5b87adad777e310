"""The README's first command, `make demo`, without the fleet: fleet.multiarch.demo against this machine only.

`make demo` runs the installed collection's playbook with the test environment's inventory and the fleet's;
here only the test environment's, so the group `devices` is empty and the rollout play has no host (the rollout
itself is tested on the fleet by test_rollout_role). The playbook names no path of the test environment.
The first run makes this machine a build host and releases the example application; each platform's
container reports its own machine. The second run changes nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from .conftest import STATE
from .helpers import VENV_BIN, ansible_env, play_recap, run

ROOT = Path(__file__).resolve().parents[2]

MACHINE = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}


def demo() -> tuple[str, dict, float]:
    started = time.monotonic()
    # as `make demo` runs it, without the fleet's inventory
    proc = run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(STATE / "inventory.yml"), "fleet.multiarch.demo"],
        env=ansible_env(),
    )
    return proc.stdout, play_recap(proc.stdout), time.monotonic() - started


def test_demo_runs_each_platform_and_a_second_run_changes_nothing(testenv):
    first, recap, _seconds = demo()
    assert recap["localhost"]["failed"] == 0, first[-6000:]
    # "platform | digest | uname -m | version", one row per platform, each container on its own machine
    rows = re.findall(r"(linux/\S+)\s+\|\s+(sha256:[0-9a-f]{64})\s+\|\s+(\S+)\s+\|\s+([\w.-]+)", first)
    assert {platform: machine for platform, _digest, machine, _version in rows} == MACHINE, first[-6000:]
    assert {version for *_rest, version in rows} == {"0.1.0"}
    assert len({digest for _platform, digest, *_rest in rows}) == 3

    second, recap, seconds = demo()
    assert recap["localhost"]["changed"] == 0, second[-6000:]
    assert recap["localhost"]["failed"] == 0
    print(f"second demo run: {seconds:.0f} s")


def test_the_demo_names_no_path_of_the_test_environment():
    """Issue 21 item 7: the demo is the product; the test environment only supplies the inventory."""
    text = (ROOT / "playbooks" / "demo.yml").read_text()
    assert not re.findall(r"/var/lib/|/var/cache/|testenv\.json|fleet-multiarch-testenv", text)
    assert "-i $(TESTENV_INVENTORY) -i $(FLEET_INVENTORY) fleet.multiarch.demo" in (ROOT / "Makefile").read_text()
