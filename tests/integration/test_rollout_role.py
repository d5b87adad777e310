"""The rollout role and playbook (`ansible-playbook fleet.multiarch.rollout`) on the emulated ARM fleet.

The module boots a private fleet - two arm64 and one armhf guest from the `provisioned` image (Docker
installed by the device role), its own state directory and port range - and releases the test app
(tests/integration/apps/rollout-app) for linux/amd64, linux/arm64 and linux/arm/v7 with the collection's
own image_build. The release records are written here from what was pushed, as the release role writes
them. The tests build on each other, in file order:

1. v2 reaches every device: each runs the digest of its own platform and its container says the right
   `uname -m`; the report lists every device as updated.
2. device_facts on each device finds its CPU, userland, engine and platform; the same release again changes
   nothing (changed=0) and restarts nothing.
3. A record whose digests the registry does not serve (v4's index, v2's platforms) is refused by the canary
   before it pulls or stops anything (issue 21: the device checks what it deploys); every device still runs v2.
4. v3, whose HEALTHCHECK fails, stops the rollout at the canary: the canary is rolled back, the other devices
   are not reached, every device still runs v2.
5. A device powered off (its QEMU killed) before its batch runs is reported unreachable; with
   max_fail_percentage 50 the rest of its batch gets v4.
6. `down` leaves no QEMU of the fleet.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from . import fleetlib
from .fleetlib import (
    DEVICE_REGISTRY,
    PLATFORM,
    PLAY_TIMEOUT,
    UNAME,
    fleet_ansible_env,
    provisioned_fleet,
    record_for,
    rollout,
    rows_by_host,
)
from .helpers import VENV_BIN, run

PORT_BASE = "12900"
APP = "fleet-test-rollout"
REPO = "fleet-test/rollout-fleet-app"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, testenv):
    """2 arm64 + 1 armhf guests booted from the provisioned image; always taken down at the end."""
    state = tmp_path_factory.mktemp("rollout-fleet")
    try:
        with provisioned_fleet(state, PORT_BASE, TIMES, "--arm64", "2", "--armhf", "1") as f:
            yield f
    finally:
        print("rollout fleet test times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in TIMES.items()))


@pytest.fixture(scope="module")
def releases(testenv, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("releases")
    t0 = time.monotonic()
    out = {
        v: record_for(
            testenv, APP, v, tmp, platforms=PLATFORMS, repo=REPO, build_args={"HEALTHY": "yes" if healthy else "no"}
        )
        for v, healthy in (("v2", True), ("v3", False), ("v4", True))
    }
    TIMES["build"] = time.monotonic() - t0
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rollout-report")


def device_state(fleet, name: str, *, uname: bool = False) -> dict:
    return fleetlib.device_state(fleet, name, APP, uname=uname)


def device_states(fleet, names, *, uname: bool = False) -> dict:
    return fleetlib.device_states(fleet, names, APP, uname=uname)


def check_reports(report_dir: Path, report: dict) -> None:
    """The Markdown and HTML reports list every device with its result, as the JSON one does."""
    md = (report_dir / f"{APP}.md").read_text()
    html = (report_dir / f"{APP}.html").read_text()
    for row in report["rows"]:
        line = next(line for line in md.splitlines() if line.startswith(f"| {row['host']} | "))
        assert f"| {row['label']} |" in line, line
        assert (row["platform"] or "-") in line
        assert f"`{(row['digest'] or '-')[:19]}`" in line
        assert re.search(rf'<tr class="{row["result"]}" id="host-{row["host"]}">', html), row["host"]
    assert report["summary"] in md
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_release_reaches_every_device_with_its_own_platform(fleet, releases, report_dir):
    v2 = releases["v2"]
    t0 = time.monotonic()
    code, output, recap, report = rollout(fleet, v2, report_dir)
    TIMES["first rollout"] = time.monotonic() - t0
    assert code == 0, output[-8000:]
    guests = fleet.guests()
    assert sorted(recap) == sorted(guests)
    assert report["state"] == "complete"
    # canary first: the first device of the play alone, then the other two
    assert [len(b) for b in report["batches"]] == [1, 2]
    rows = rows_by_host(report)
    states = device_states(fleet, guests, uname=True)
    for name, guest in guests.items():
        platform = PLATFORM[guest["arch"]]
        row, state = rows[name], states[name]
        assert row["result"] == "updated", row
        assert recap[name]["changed"] >= 1
        assert row["platform"] == platform
        assert row["digest"] == v2["platforms"][platform] == row["expected_digest"]
        assert row["seconds"] > 0
        assert state["image"] == f"{DEVICE_REGISTRY}/fleet-test/rollout-fleet-app@{v2['platforms'][platform]}"
        assert state["digest"] == v2["platforms"][platform]
        assert state["uname"] == UNAME[guest["arch"]]
        assert state["answer"] == "v2"
    # the two arm64 devices run one digest, the armhf device another
    assert len({rows[n]["digest"] for n in guests}) == 2
    check_reports(report_dir, report)
    fleet.v2_started = {name: state["started"] for name, state in states.items()}


# what device_facts must find on each kind of guest: (machine, userland, bits, ARM level, core, engine arch)
FACTS = {
    "arm64": ("aarch64", "arm64", 64, 8, "Cortex-A72", "arm64"),
    "armhf": ("armv7l", "armhf", 32, 7, "Cortex-A15", "arm"),
}


def test_device_facts_on_every_device(fleet, tmp_path):
    """fleet.multiarch.device_facts over SSH on each guest: the CPU, userland, engine and the platform to pull."""
    results = tmp_path / "facts.jsonl"
    env = fleet_ansible_env(
        ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="fleet_result",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        FLEET_TEST_RESULT_FILE=str(results),
    )
    inventory = str(fleet.state / "inventory.yml")
    argv = [str(VENV_BIN / "ansible"), "-i", inventory, "devices", "-m", "fleet.multiarch.device_facts"]
    run(argv, env=env, timeout=PLAY_TIMEOUT)
    hosts = {r["_host"]: r for r in map(json.loads, results.read_text().splitlines())}
    guests = fleet.guests()
    assert sorted(hosts) == sorted(guests)
    for name, guest in guests.items():
        facts = hosts[name]["ansible_facts"]["fleet_device"]
        machine, userland, bits, level, core, engine_arch = FACTS[guest["arch"]]
        assert facts["machine"] == machine, facts
        assert (facts["userland_arch"], facts["userland_bits"], facts["elf"]["bits"]) == (userland, bits, bits), facts
        assert (facts["cpu"]["architecture_level"], facts["cpu"]["core"]) == (level, core), facts["cpu"]
        assert facts["platform"] == PLATFORM[guest["arch"]]
        assert facts["engine"]["reachable"] and facts["engine"]["arch"] == engine_arch, facts["engine"]
        assert 512 <= facts["memory_mb"] <= 4096, facts["memory_mb"]
        assert set(facts["board"]) >= {"model", "model_source"}, facts["board"]
        assert not hosts[name].get("changed")


def test_the_same_release_again_changes_nothing(fleet, releases, report_dir):
    t0 = time.monotonic()
    # one batch: batches change nothing here, and each costs a round of SSH on emulated guests
    code, output, recap, report = rollout(fleet, releases["v2"], report_dir, rollout_serial=["100%"])
    TIMES["unchanged rollout"] = time.monotonic() - t0
    assert code == 0, output[-8000:]
    assert {host: counts["changed"] for host, counts in recap.items()} == dict.fromkeys(fleet.guests(), 0)
    assert {row["result"] for row in report["rows"]} == {"unchanged"}
    states = device_states(fleet, fleet.guests())
    assert {name: state["started"] for name, state in states.items()} == fleet.v2_started  # nothing restarted
    check_reports(report_dir, report)


def test_a_record_the_registry_does_not_serve_is_refused_by_the_canary(fleet, releases, report_dir, tmp_path):
    """The record names v4's index but lists v2's digests: the canary's container_rollout, given the record's
    platforms, refuses before it pulls or stops anything, and the rollout stops there."""
    v2, v4 = releases["v2"], releases["v4"]
    record = {key: value for key, value in v4.items() if key != "path"}
    record["platforms"] = v2["platforms"]
    path = tmp_path / "mismatch.json"
    path.write_text(json.dumps(record))
    t0 = time.monotonic()
    code, output, recap, report = rollout(fleet, {**record, "path": str(path)}, report_dir)
    TIMES["digest refusal"] = time.monotonic() - t0
    assert code != 0, output[-8000:]
    guests = fleet.guests()
    canary = next(iter(guests))
    platform = PLATFORM[guests[canary]["arch"]]
    rows = rows_by_host(report)
    assert rows[canary]["result"] == "failed", rows[canary]
    assert f"but the release expects {v2['platforms'][platform]}" in rows[canary]["message"]
    assert "does not match the index it names" in rows[canary]["message"]
    assert recap[canary]["failed"] == 1 and recap[canary]["changed"] == 0
    assert all(rows[name]["result"] == "not_reached" for name in guests if name != canary)
    states = device_states(fleet, guests)
    assert {name: state["started"] for name, state in states.items()} == fleet.v2_started  # nothing restarted
    for name, state in states.items():
        assert state["digest"] == v2["platforms"][PLATFORM[guests[name]["arch"]]]


def test_failing_health_check_on_the_canary_stops_the_rollout(fleet, releases, report_dir):
    v2, v3 = releases["v2"], releases["v3"]
    t0 = time.monotonic()
    code, output, recap, report = rollout(fleet, v3, report_dir)
    TIMES["canary failure"] = time.monotonic() - t0
    assert code != 0, output[-8000:]
    guests = fleet.guests()
    canary = next(iter(guests))  # the first device of the play
    assert report["batches"] == [[canary]]
    assert report["state"] == "stopped" and report["stopped_after_batch"] == 1
    rows = rows_by_host(report)
    assert rows[canary]["result"] == "rolled_back"
    assert "HEALTHCHECK reports unhealthy" in rows[canary]["message"]
    platform = PLATFORM[guests[canary]["arch"]]
    assert rows[canary]["attempted_digest"] == v3["platforms"][platform]
    assert rows[canary]["digest"] == v2["platforms"][platform]
    assert recap[canary]["failed"] == 1
    for name in guests:
        if name != canary:
            assert rows[name]["result"] == "not_reached", rows[name]
            assert name not in recap  # its batch never started
    for name, state in device_states(fleet, guests).items():
        assert state["digest"] == v2["platforms"][PLATFORM[guests[name]["arch"]]]
        assert state["answer"] == "v2"
    check_reports(report_dir, report)


def test_a_device_powered_off_mid_rollout_is_reported_and_its_batch_completes(fleet, releases, report_dir):
    v4 = releases["v4"]
    guests = fleet.guests()
    canary = next(iter(guests))
    (victim,) = [n for n, g in guests.items() if g["arch"] == "armhf"]
    pid = int((fleet.state / "guests" / victim / "pid").read_text())
    assert victim in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    killed = []

    def pull_the_plug(line: str) -> None:
        # while the canary deploys (the victim is in the next batch), the victim loses power
        if not killed and line.startswith("TASK [fleet.multiarch.rollout : Deploy the release"):
            os.kill(pid, signal.SIGKILL)
            killed.append(time.monotonic())

    t0 = time.monotonic()
    code, output, recap, report = rollout(fleet, v4, report_dir, pull_the_plug, rollout_max_fail_percentage=50)
    TIMES["powered-off device"] = time.monotonic() - t0
    assert killed, output[-8000:]
    assert code != 0  # one device failed
    assert report["batches"] == [[canary], [n for n in guests if n != canary]]
    assert report["state"] == "complete with failures"
    rows = rows_by_host(report)
    assert rows[victim]["result"] == "unreachable", rows[victim]
    assert rows[victim]["batch"] == 2
    assert "ssh" in rows[victim]["message"].lower()
    assert recap[victim]["failed"] == 1
    alive = [n for n in guests if n != victim]
    states = device_states(fleet, alive, uname=True)
    for name in alive:
        platform = PLATFORM[guests[name]["arch"]]
        assert rows[name]["result"] == "updated", rows[name]
        assert recap[name]["changed"] >= 1 and recap[name]["failed"] == 0
        assert rows[name]["digest"] == states[name]["digest"] == v4["platforms"][platform]
        assert states[name]["answer"] == "v4"
        assert states[name]["uname"] == UNAME[guests[name]["arch"]]
    check_reports(report_dir, report)


def test_down_leaves_no_qemu_of_the_fleet(fleet):
    fleet.cmd("down", timeout=600)
    assert fleet.qemu_processes() == []
