"""Faults on the fleet, injected for real on an emulated arm64 guest (issue 26's fault suite).

One guest booted from the `provisioned` image with `FLEET_DISK_CACHE=writeback`, so that a power cut loses what
a board loses (the writes the guest had not flushed) and nothing more. The tests build on each other, in file
order; each injects one fault while the fleet.multiarch.rollout playbook runs, and ends by checking that the
device serves one complete version - the one running container that publishes the app's port, whose digest label,
image and answer are those of one release - and what the fleet report and the device's deployment history say:

1. v1 reaches the device (the baseline).
2. The guest's link to the registry is cut (iptables) while the big release downloads: the device fails within
   pull_timeout, v1 keeps serving, the report and the history say the pull failed and v1 runs.
3. The disk is full: the pull fails with a message naming the device, the free space and what the image needs;
   v1 keeps serving.
4. With the link back and the disk freed, the next rollout brings the big release, and the device's dockerd
   restarts while that rollout waits for the new container's health: the engine starts the new container again
   and the rollout still succeeds.
5. The power is cut while another release is pulled (QEMU killed, as the engine unpacks the big layer): once the
   guest boots, the engine's restart policy serves the old version.
6. The power is cut again in the middle of the swap of that release: once the guest boots, the old version serves.
7. The next rollout converges: it undoes the interrupted swap (the history says so) and deploys the release.

Counts (faults injected, survived, lost) and times are printed at the end of the module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .fleetlib import DEVICE_REGISTRY, FLEET, provisioned_fleet, record_for, rollout, rows_by_host

PORT_BASE = "13300"
APP = "fleet-test-faults"
PLATFORMS = ["linux/arm64"]
PLATFORM = "linux/arm64"
# The big releases' extra layer, random bytes (nothing to compress): about 10 s of download and as much
# of unpacking on the emulated guest, so that a fault injected once the pull began lands in its middle.
FILLER_MB = 32
PULL_TIMEOUT = 20  # the network cut's rollout: a pull on a dead link must fail within this
HISTORY = f"/var/lib/fleet-multiarch/rollout/{APP}.json"
TIMES: dict[str, float] = {}
FAULTS: dict[str, str] = {}  # fault -> "survived" once its test checked the device; what is missing failed


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, testenv):
    state = tmp_path_factory.mktemp("faults-fleet")
    t0 = time.monotonic()
    try:
        with provisioned_fleet(
            state, PORT_BASE, TIMES, "--arm64", "1", "--armhf", "0", FLEET_DISK_CACHE="writeback"
        ) as f:
            f.name = sorted(f.guests())[0]
            yield f
    finally:
        TIMES["suite"] = time.monotonic() - t0
        survived = sum(1 for v in FAULTS.values() if v == "survived")
        print(
            f"\nfault suite: {len(FAULTS)} faults injected, {survived} survived, {len(FAULTS) - survived} lost"
            f" ({', '.join(f'{k}: {v}' for k, v in FAULTS.items())}); times (s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in TIMES.items())
        )


def big_context(tmp: Path, answer: str) -> Path:
    """A release on top of v2 with a layer of random bytes and an index page that says ``answer``."""
    ctx = tmp / answer
    (ctx / "www").mkdir(parents=True)
    (ctx / "www" / "index.html").write_text(answer + "\n")
    (ctx / "filler").write_bytes(os.urandom(FILLER_MB << 20))
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
    for name in ("bigA", "bigB"):
        out[name] = record_for(
            testenv, APP, name, tmp, platforms=PLATFORMS, context=big_context(tmp, name), build_args={"BASE": v2_image}
        )
    TIMES["build"] = time.monotonic() - t0
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults-report")


def digest_of(releases, version: str) -> str:
    return releases[version]["platforms"][PLATFORM]


# What serves: every running container publishing the app's port, with its name, image and digest label, then
# what the port answers.
SERVING = (
    "for c in $(sudo docker ps -q --filter publish=8080); do sudo docker inspect --format "
    "'{{.Name}} {{.Config.Image}} {{index .Config.Labels \"io.fleet-multiarch.digest\"}}' $c; done; echo ==; "
    "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=30)"
    '.read().decode().strip())"'
)


def serving(fleet, releases, *, wait: float = 0) -> str:
    """The one release the device serves: one running container holds the port, and its digest label, its image
    and its answer are those of one release. ``wait``: seconds to wait for it (a guest that just booted)."""
    deadline = time.monotonic() + wait
    while True:
        proc = fleet.ssh(fleet.name, SERVING, check=False)
        listed = proc.stdout.partition("==\n")
        answer = listed[2]
        rows = [line.split() for line in listed[0].splitlines() if line.strip()]
        if (proc.returncode == 0 and rows) or time.monotonic() >= deadline:
            break
        time.sleep(5)
    assert proc.returncode == 0 and len(rows) == 1, f"not one container serves: {proc.stdout} {proc.stderr}"
    name, image, digest = rows[0]
    name = name.lstrip("/")
    versions = [v for v in releases if digest_of(releases, v) == digest]
    assert len(versions) == 1, f"{name} runs none of the releases: {rows[0]}"
    assert image.endswith(digest) and answer.strip() == versions[0], (rows[0], answer)
    return versions[0]


def history(fleet) -> list:
    return json.loads(fleet.ssh(fleet.name, f"sudo cat {HISTORY}").stdout)["deployments"]


def containers(fleet) -> dict:
    """Every container of the app on the device: name -> (state, digest label)."""
    out = fleet.ssh(
        fleet.name,
        "sudo docker ps -a --filter name="
        + APP
        + " --format '{{.Names}} {{.State}} {{.Label \"io.fleet-multiarch.digest\"}}'",
    ).stdout
    return {name: (state, digest) for name, state, digest in (line.split() for line in out.splitlines() if line)}


def deploy_seconds(output: str) -> float:
    """Seconds the deployment task ran, from the module's result (``seconds``) in the playbook's output."""
    line = next(line for line in output.splitlines() if '"seconds":' in line and '"action"' in line)
    return json.loads(line[line.index("{") :])["seconds"]


class RegistryWatch:
    """Blob GETs of this app that the registry logs from now on: its access log line comes once a blob is sent,
    ``"GET /v2/<repository>/blobs/sha256:... HTTP/1.1" 200 <bytes>``."""

    def __init__(self, testenv):
        self.path = Path(testenv["registry_log"])
        self.offset = self.path.stat().st_size
        self.pattern = re.compile(rf'"GET /v2/fleet-test/{APP}/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" 200 (\d+) ')

    def blob_gets(self, min_bytes: int = 0) -> list[str]:
        """The blobs served whole, of ``min_bytes`` or more."""
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            found = [self.pattern.search(line) for line in handle.read().splitlines()]
        return [m.group(0) for m in found if m and int(m.group(1)) >= min_bytes]


def when_pulling(testenv, action, *, min_bytes: int = 0, delay: float = 0):
    """An ``on_line`` for :func:`rollout`: once the deployment task starts, ``action`` runs (in a thread) as soon
    as the registry has served this app's device a blob of ``min_bytes`` or more (then ``delay`` seconds later),
    while the rest of the pull is still under way. ``on_line.fired`` holds the time it ran."""
    watch = RegistryWatch(testenv)
    started = threading.Event()
    fired = []

    def watcher():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if watch.blob_gets(min_bytes):
                time.sleep(delay)
                action()
                fired.append(time.monotonic())
                return
            time.sleep(0.2)

    def on_line(line: str) -> None:
        if line.startswith("TASK [fleet.multiarch.rollout : Deploy the release") and not started.is_set():
            started.set()
            threading.Thread(target=watcher, daemon=True).start()

    on_line.fired = fired
    return on_line


class EngineEvents:
    """``docker events`` of the guest read on the host, over one SSH session: ``action`` runs (in this process,
    so at once) at the first event of ``event`` whose attributes contain ``match``."""

    def __init__(self, fleet, event: str, match: str, action):
        argv = [
            str(FLEET),
            "ssh",
            fleet.name,
            f"sudo docker events --filter type=container --filter event={event} --format '{{{{json .Actor}}}}'",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=fleet.env)
        self.fired: list[str] = []
        self.match, self.action = match, action
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()  # the rollout reads the device and pulls before the swap: time for the CLI to start

    def _read(self) -> None:
        for line in self.proc.stdout:
            if self.match in line and not self.fired:
                self.action()
                self.fired.append(line.strip())
                return

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def rolled_out(fleet, releases, report_dir, version: str, step: str) -> None:
    """A rollout of ``version`` that succeeds: the device is reported updated and serves it."""
    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases[version], report_dir)
    TIMES[step] = time.monotonic() - t0
    assert code == 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "updated"
    assert serving(fleet, releases) == version


def test_v1_reaches_the_device(fleet, releases, report_dir):
    rolled_out(fleet, releases, report_dir, "v1", "v1")


def test_network_cut_in_the_middle_of_the_pull(fleet, releases, report_dir, testenv):
    host, port = DEVICE_REGISTRY.rsplit(":", 1)
    rule = f"OUTPUT -d {host} -p tcp --dport {port} -j DROP"
    on_line = when_pulling(testenv, lambda: fleet.ssh(fleet.name, f"sudo iptables -I {rule}"))
    FAULTS["network cut mid-pull"] = "injected"
    t0 = time.monotonic()
    try:
        code, output, _recap, report = rollout(
            fleet, releases["bigA"], report_dir, on_line, rollout_pull_timeout=PULL_TIMEOUT
        )
    finally:
        fleet.ssh(fleet.name, f"sudo iptables -D {rule}", check=False)
    TIMES["network cut"] = time.monotonic() - t0
    assert on_line.fired, output[-8000:]
    assert code != 0, output[-8000:]
    # failed within pull_timeout (and the seconds before the pull), not after the engine's own 10 minutes
    assert deploy_seconds(output) < PULL_TIMEOUT + 60, output[-4000:]
    row = rows_by_host(report)[fleet.name]
    assert row["result"] == "failed", row
    print(f"\nnetwork cut: the deployment failed after {deploy_seconds(output)} s: {row['message']}")
    assert "pull_timeout" in row["message"] and DEVICE_REGISTRY in row["message"], row["message"]
    # the report says what the device runs: v1, not the release it failed to pull
    assert (row["digest"], row["attempted_digest"]) == (digest_of(releases, "v1"), digest_of(releases, "bigA"))
    assert serving(fleet, releases) == "v1"
    last = history(fleet)[-1]
    assert (last["result"], last["digest"], last["previous_digest"]) == (
        "failed",
        digest_of(releases, "bigA"),
        digest_of(releases, "v1"),
    ), last
    assert "pull_timeout" in last["detail"]
    FAULTS["network cut mid-pull"] = "survived"


def test_disk_full_during_the_pull(fleet, releases, report_dir):
    # Leave 20 MB free on the file system of the engine's data, for root (the engine), less than the release's
    # download; fallocate takes the space at once.
    fill = (
        'free=$(( $(stat -f -c "%f * %S" /var/lib/docker) / 1048576 )); '
        "sudo fallocate -l $(( free - 20 ))M /var/lib/docker/fleet-test-filler"
    )
    fleet.ssh(fleet.name, fill)
    FAULTS["disk full during the pull"] = "injected"
    t0 = time.monotonic()
    try:
        code, output, _recap, report = rollout(fleet, releases["bigA"], report_dir)
    finally:
        fleet.ssh(fleet.name, "sudo rm -f /var/lib/docker/fleet-test-filler", check=False)
    TIMES["disk full"] = time.monotonic() - t0
    assert code != 0, output[-8000:]
    row = rows_by_host(report)[fleet.name]
    assert row["result"] == "failed", row
    message = row["message"]
    print(f"\ndisk full: {message}")
    assert "no space left on device" in message and f"the disk of {fleet.name} is full" in message, message
    assert "/var/lib/docker has" in message and "MB free" in message, message
    # what the image downloads: the filler layer (48 MiB, about 50 MB) and the small ones of v2
    needed = re.search(r"the image needs (\d+) MB", message)
    assert needed and FILLER_MB * 1.048 <= int(needed.group(1)) <= FILLER_MB * 1.048 + 10, message
    assert row["digest"] == digest_of(releases, "v1"), row
    assert serving(fleet, releases) == "v1"
    last = history(fleet)[-1]
    assert (last["result"], last["digest"]) == ("failed", digest_of(releases, "bigA")), last
    FAULTS["disk full during the pull"] = "survived"


def test_the_next_rollout_brings_the_release_through_a_dockerd_restart(fleet, releases, report_dir):
    """With the link back and the disk freed, the next rollout of the release brings it - and the device's engine
    restarts while the rollout waits for the new container's health."""
    big_a = digest_of(releases, "bigA")
    # On the guest, at once: the new container's start event restarts the engine, while the rollout waits for the
    # image's HEALTHCHECK (no probe of the task's own, so that the wait lasts its first checks).
    trigger = (
        "nohup sudo sh -c 'docker events --filter event=start --filter label=io.fleet-multiarch.digest="
        f"{big_a} | (read -r line; systemctl restart docker; echo restarted)' > /tmp/fault-restart.log 2>&1 &"
    )
    fleet.ssh(fleet.name, trigger)
    FAULTS["dockerd restart during the health wait"] = "injected"
    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases["bigA"], report_dir, rollout_health={})
    TIMES["next rollout, dockerd restart"] = time.monotonic() - t0
    assert "restarted" in fleet.ssh(fleet.name, "cat /tmp/fault-restart.log").stdout, output[-8000:]
    # the engine came back and started the new container again; the deployment waited for it
    assert code == 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "updated"
    assert serving(fleet, releases) == "bigA"
    last = history(fleet)[-1]
    assert (last["result"], last["digest"], last["previous_digest"], last["health"]) == (
        "ok",
        big_a,
        digest_of(releases, "v1"),
        "healthy",
    ), last
    FAULTS["dockerd restart during the health wait"] = "survived"


def test_power_cut_in_the_middle_of_the_pull(fleet, releases, report_dir, testenv):
    # the big layer's download has completed: the power goes while the engine unpacks it
    on_line = when_pulling(testenv, lambda: fleet.cmd("power-cut", fleet.name), min_bytes=FILLER_MB << 20, delay=2)
    FAULTS["power cut mid-pull"] = "injected"
    t0 = time.monotonic()
    code, output, _recap, report = rollout(fleet, releases["bigB"], report_dir, on_line)
    assert on_line.fired and code != 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "unreachable"
    fleet.cmd("power-on", fleet.name)
    # the engine starts the old version again by its restart policy
    assert serving(fleet, releases, wait=180) == "bigA"
    TIMES["power cut (pull)"] = time.monotonic() - t0
    assert history(fleet)[-1]["digest"] == digest_of(releases, "bigA")
    FAULTS["power cut mid-pull"] = "survived"


def test_power_cut_in_the_middle_of_the_swap(fleet, releases, report_dir):
    # the power goes as the engine renames the running container to <name>-previous: the first move of the swap
    events = EngineEvents(fleet, "rename", f'"name":"{APP}-previous"', lambda: fleet.cmd("power-cut", fleet.name))
    FAULTS["power cut mid-swap"] = "injected"
    t0 = time.monotonic()
    try:
        code, output, _recap, report = rollout(fleet, releases["bigB"], report_dir)
    finally:
        events.close()
    assert events.fired and code != 0, output[-8000:]
    assert rows_by_host(report)[fleet.name]["result"] == "unreachable"
    fleet.cmd("power-on", fleet.name)
    TIMES["power cut (swap)"] = time.monotonic() - t0
    # the old container still had its restart policy: the engine serves it again (under whichever name it kept)
    assert serving(fleet, releases, wait=180) == "bigA"
    # the swap's record was on disk before anything moved
    assert history(fleet)[-1]["result"] == "in_progress"


def test_the_next_rollout_converges(fleet, releases, report_dir):
    rolled_out(fleet, releases, report_dir, "bigB", "converge")
    interrupted, last = history(fleet)[-2:]
    assert (interrupted["result"], interrupted["digest"]) == ("interrupted", digest_of(releases, "bigB")), interrupted
    print(f"\nconverged: {interrupted['detail']}")
    assert f"{APP} ({digest_of(releases, 'bigA')}) runs again" in interrupted["detail"], interrupted
    assert (last["result"], last["digest"], last["previous_digest"]) == (
        "ok",
        digest_of(releases, "bigB"),
        digest_of(releases, "bigA"),
    ), last
    # nothing left over: the release and the one kept for a rollback (bigA), nothing else
    assert containers(fleet) == {
        APP: ("running", digest_of(releases, "bigB")),
        f"{APP}-previous": ("exited", digest_of(releases, "bigA")),
    }
    FAULTS["power cut mid-swap"] = "survived"


def test_down_leaves_no_qemu(fleet):
    fleet.cmd("down", timeout=600)
    assert fleet.qemu_processes() == []
