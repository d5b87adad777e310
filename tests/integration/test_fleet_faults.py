"""Faults on the fleet, injected for real on an emulated arm64 guest (issue 26's fault suite).

One guest booted from the `provisioned` image with `FLEET_DISK_CACHE=writeback`, so that a power cut loses what
a board loses (writes the guest had not flushed) and nothing more. The tests build on each other, in file order;
each injects one fault during a rollout of the fleet.multiarch.rollout playbook and ends by checking that the
device serves one complete version (the running container's digest label, its answer and the release agree), and
that the device's deployment history tells what happened:

1. v1 reaches the device (the baseline).
2. The network to the registry is cut in the middle of the pull: the device fails within the engine's timeout,
   v1 keeps serving; with the link back, the next rollout brings the big release.
3. The disk is full: the pull fails with a message naming the device and the space, v-big keeps serving.
4. The device's dockerd restarts while the rollout waits for the new container's health.
5. The power is cut in the middle of the pull, and again in the middle of the swap: after the guest boots, the
   engine's restart policy serves a complete version, and the next rollout converges.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from .fleetlib import DEVICE_REGISTRY, device_state, provisioned_fleet, record_for, rollout, rows_by_host

PORT_BASE = "13300"
APP = "fleet-test-faults"
PLATFORMS = ["linux/arm64"]
PLATFORM = "linux/arm64"
FILLER_MB = 96  # the big release's extra layer, random bytes: long enough a pull to cut in its middle
TIMES: dict[str, float] = {}
HISTORY = f"/var/lib/fleet-multiarch/rollout/{APP}.json"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, testenv):
    state = tmp_path_factory.mktemp("faults-fleet")
    try:
        with provisioned_fleet(
            state, PORT_BASE, TIMES, "--arm64", "1", "--armhf", "0", FLEET_DISK_CACHE="writeback"
        ) as f:
            f.name = next(iter(f.guests()))
            yield f
    finally:
        print("fault suite times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in TIMES.items()))


def big_context(tmp: Path, answer: str) -> Path:
    """A release on top of v2 with a layer of random bytes and an index page that says ``answer``."""
    ctx = tmp / answer
    (ctx / "www").mkdir(parents=True)
    (ctx / "www" / "index.html").write_text(answer + "\n")
    with open(ctx / "filler", "wb") as handle:
        for _ in range(FILLER_MB):
            handle.write(os.urandom(1 << 20))
    (ctx / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nCOPY filler /filler\nCOPY www/index.html /www/index.html\n"
    )
    return ctx


@pytest.fixture(scope="module")
def releases(testenv, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("fault-releases")
    t0 = time.monotonic()
    out = {v: record_for(testenv, APP, v, tmp, platforms=PLATFORMS) for v in ("v1", "v2")}
    v2_image = f"{out['v2']['repository']}:v2"
    for name in ("big1", "big2", "big3"):
        out[name] = record_for(
            testenv, APP, name, tmp, platforms=PLATFORMS, context=big_context(tmp, name), build_args={"BASE": v2_image}
        )
    TIMES["build"] = time.monotonic() - t0
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults-report")


def serving(fleet, releases) -> str:
    """The one release the device serves: its container's digest label, the digest and the answer agree."""
    state = device_state(fleet, fleet.name, APP)
    versions = [v for v, r in releases.items() if r["platforms"][PLATFORM] == state["digest"]]
    assert len(versions) == 1, f"the device runs none of the releases: {state}"
    assert state["answer"] == versions[0] and state["image"].endswith(state["digest"]), state
    return versions[0]


def last_history(fleet) -> dict:
    history = json.loads(fleet.ssh(fleet.name, f"sudo cat {HISTORY}").stdout)
    return history["deployments"][-1]


class RegistryWatch:
    """Lines the registry logs from now on (a blob GET is logged when it completes)."""

    def __init__(self, testenv):
        self.path = Path(testenv["registry_log"])
        self.offset = self.path.stat().st_size

    def lines(self) -> list[str]:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            return handle.read().splitlines()

    def blob_gets(self) -> list[str]:
        return [line for line in self.lines() if f'"GET /v2/fleet-test/{APP}/blobs/sha256:' in line]


def when_pulling(testenv, action):
    """An ``on_line`` for :func:`rollout`: once the deployment task starts, ``action`` runs (in a thread) as soon
    as the registry has served the first blob of this app to the device, while the others are still on the way."""
    watch = RegistryWatch(testenv)
    started = threading.Event()
    fired = []

    def watcher():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            served = watch.blob_gets()
            if served:
                fired.append(served)
                action()
                return
            time.sleep(0.2)

    def on_line(line: str) -> None:
        if line.startswith("TASK [fleet.multiarch.rollout : Deploy the release") and not started.is_set():
            started.set()
            threading.Thread(target=watcher, daemon=True).start()

    on_line.fired = fired
    return on_line


def test_v1_reaches_the_device(fleet, releases, report_dir):
    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases["v1"], report_dir)
    TIMES["v1"] = time.monotonic() - t0
    assert code == 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "updated"
    assert serving(fleet, releases) == "v1"


def test_network_cut_in_the_middle_of_the_pull(fleet, releases, report_dir, testenv):
    cut = "sudo iptables -I OUTPUT -d 10.0.2.2 -p tcp --dport 5000 -j DROP"
    heal = "sudo iptables -D OUTPUT -d 10.0.2.2 -p tcp --dport 5000 -j DROP"
    started = {}

    def cut_the_link():
        fleet.ssh(fleet.name, cut)
        started["cut"] = time.monotonic()

    on_line = when_pulling(testenv, cut_the_link)
    t0 = time.monotonic()
    try:
        code, output, _recap, report = rollout(fleet, releases["big1"], report_dir, on_line)
    finally:
        fleet.ssh(fleet.name, heal, check=False)
    TIMES["network cut"] = time.monotonic() - t0
    assert on_line.fired, output[-8000:]
    assert code != 0, output[-8000:]
    row = rows_by_host(report)[fleet.name]
    assert row["result"] == "failed", row
    assert "pulling" in row["message"] and DEVICE_REGISTRY in row["message"], row["message"]
    assert serving(fleet, releases) == "v1"
    history = last_history(fleet)
    assert history["result"] == "failed" and history["digest"] == releases["v1"]["platforms"][PLATFORM], history
    # the link is back: the next rollout completes
    code, output, _recap, report = rollout(fleet, releases["big1"], report_dir)
    assert code == 0, output[-8000:]
    assert serving(fleet, releases) == "big1"


def test_disk_full_during_the_pull(fleet, releases, report_dir):
    # leave 40 MiB free on the file system of the engine's data: less than the big release's layer
    fill = (
        "df -B1M --output=avail /var/lib/docker | tail -1 | "
        "{ read a; sudo fallocate -l $(( (a - 40) ))M /var/lib/docker/fleet-test-filler; }"
    )
    fleet.ssh(fleet.name, fill)
    try:
        code, output, _recap, report = rollout(fleet, releases["big2"], report_dir)
    finally:
        fleet.ssh(fleet.name, "sudo rm -f /var/lib/docker/fleet-test-filler", check=False)
    assert code != 0, output[-8000:]
    row = rows_by_host(report)[fleet.name]
    assert row["result"] == "failed", row
    assert "space" in row["message"] and fleet.name in row["message"], row["message"]
    assert serving(fleet, releases) == "big1"


def test_dockerd_restarted_during_the_health_wait(fleet, releases, report_dir):
    v2 = releases["v2"]["platforms"][PLATFORM]
    restarted = []

    def restart_when_the_new_container_runs():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            ids = fleet.ssh(
                fleet.name, f"sudo docker ps -q --filter label=io.fleet-multiarch.digest={v2}", check=False
            ).stdout.split()
            if ids:
                fleet.ssh(fleet.name, "sudo systemctl restart docker")
                restarted.append(time.monotonic())
                return
            time.sleep(0.5)

    def on_line(line: str) -> None:
        if line.startswith("TASK [fleet.multiarch.rollout : Deploy the release") and not restarted:
            threading.Thread(target=restart_when_the_new_container_runs, daemon=True).start()

    code, output, _recap, report = rollout(fleet, releases["v2"], report_dir, on_line)
    assert restarted, output[-8000:]
    row = rows_by_host(report)[fleet.name]
    now = serving(fleet, releases)
    history = last_history(fleet)
    # either outcome is a complete version, and the report and the history say which
    if row["result"] == "updated":
        assert code == 0 and now == "v2" and history["result"] == "success", (row, history)
    else:
        assert row["result"] in ("failed", "rolled_back"), row
        assert now == "big1" and history["digest"] == releases["big1"]["platforms"][PLATFORM], (row, history)
        code, output, _recap, report = rollout(fleet, releases["v2"], report_dir)
        assert code == 0, output[-8000:]
        assert serving(fleet, releases) == "v2"


def test_power_cut_in_the_middle_of_the_pull(fleet, releases, report_dir, testenv):
    on_line = when_pulling(testenv, lambda: fleet.cmd("power-cut", fleet.name))
    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases["big3"], report_dir, on_line)
    assert on_line.fired and code != 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "unreachable"
    fleet.cmd("power-on", fleet.name)
    TIMES["power cut (pull)"] = time.monotonic() - t0
    # the engine started the old version again by its restart policy
    assert serving(fleet, releases) == "v2"
    code, output, _recap, report = rollout(fleet, releases["big3"], report_dir)
    assert code == 0, output[-8000:]
    assert serving(fleet, releases) == "big3"


def test_power_cut_in_the_middle_of_the_swap(fleet, releases, report_dir):
    v1 = releases["v1"]["platforms"][PLATFORM]
    cut = []

    def cut_when_the_new_container_exists():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            ids = fleet.ssh(
                fleet.name, f"sudo docker ps -aq --filter label=io.fleet-multiarch.digest={v1}", check=False
            ).stdout.split()
            if ids:
                fleet.cmd("power-cut", fleet.name)
                cut.append(time.monotonic())
                return
            time.sleep(0.3)

    def on_line(line: str) -> None:
        if line.startswith("TASK [fleet.multiarch.rollout : Deploy the release") and not cut:
            threading.Thread(target=cut_when_the_new_container_exists, daemon=True).start()

    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases["v1"], report_dir, on_line)
    assert cut and code != 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "unreachable"
    fleet.cmd("power-on", fleet.name)
    TIMES["power cut (swap)"] = time.monotonic() - t0
    # after the boot the device serves one complete version, old or new
    assert serving(fleet, releases) in ("big3", "v1")
    code, output, _recap, _report = rollout(fleet, releases["v1"], report_dir)
    assert code == 0, output[-8000:]
    assert serving(fleet, releases) == "v1"
    assert last_history(fleet)["digest"] == v1


def test_down_leaves_no_qemu(fleet):
    fleet.cmd("down", timeout=600)
    assert fleet.qemu_processes() == []
