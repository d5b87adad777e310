"""The README's first command, `make demo`, without the fleet: playbooks/demo.yml against this machine only.

`make demo` passes the fleet's inventory; here the inventory is localhost alone, so the group `devices` is
empty and the rollout play has no host (the rollout itself is tested on the fleet by test_rollout_role).
The first run makes this machine a build host and releases the example application; each platform's
container reports its own machine. The second run changes nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from .helpers import play_recap, run_playbook

ROOT = Path(__file__).resolve().parents[2]

MACHINE = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}


def demo() -> tuple[str, dict, float]:
    started = time.monotonic()
    proc = run_playbook(ROOT / "playbooks" / "demo.yml")
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
