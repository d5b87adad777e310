"""The emulated fleet as the rollout tests use it: private guests, releases of the test app, rollouts, device state.

Shared by the test modules that boot guests from the `provisioned` image (Docker installed by the device role):
each boots its own fleet (its own state directory and port range) from the machine's image cache.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import ReleaseRecord

from .helpers import VENV_BIN, clean_env, play_recap, qemu_processes_of, run, run_module

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "scripts" / "fleet.sh"
PROVISION = ROOT / "scripts" / "fleet-provision.sh"
APP_DIR = Path(__file__).parent / "apps" / "rollout-app"  # built with Dockerfile.fleet
IMAGE = "provisioned"
DEVICE_REGISTRY = "10.0.2.2:5000"  # the host's registry as QEMU user networking shows it to a guest
UNAME = {"arm64": "aarch64", "armhf": "armv7l"}
PLATFORM = {"arm64": "linux/arm64", "armhf": "linux/arm/v7"}
BOOT_TIMEOUT = 3600
PLAY_TIMEOUT = 1800


class Fleet:
    """A private fleet: its own state directory and ports, the machine's image cache."""

    def __init__(self, state_parent: Path, port_base: str, **env: str):
        self.state = state_parent / "fleet"
        self.env = dict(os.environ, FLEET_TESTENV_STATE=str(state_parent), FLEET_PORT_BASE=port_base, **env)

    def cmd(self, *args: str, check: bool = True, timeout: int = BOOT_TIMEOUT):
        return run([str(FLEET), *args], check=check, timeout=timeout, env=self.env)

    def guests(self) -> dict[str, dict]:
        return {g["name"]: g for g in json.loads((self.state / "fleet.json").read_text())["guests"]}

    def ssh(self, name: str, command: str, *, check: bool = True, timeout: int = 300):
        return self.cmd("ssh", name, command, check=check, timeout=timeout)

    def qemu_processes(self) -> list[str]:
        """Command lines of QEMU processes that use a disk of this fleet, read from /proc."""
        return qemu_processes_of(self.state)


def provisioned_missing() -> list[str]:
    return [
        arch
        for arch in UNAME
        if run([str(FLEET), "provisioned-recipe", arch, IMAGE], check=False, timeout=60).returncode != 0
    ]


@contextlib.contextmanager
def provisioned_fleet(state_parent: Path, port_base: str, times: dict, *up_args: str, **env: str):
    """Guests booted from the provisioned image (made first when its recipe changed); always taken down."""
    # what `make fleet-provisioned` runs: it rebuilds the images when the device role or the base image changed,
    # and returns at once when they are current
    t0 = time.monotonic()
    run([str(PROVISION)], timeout=BOOT_TIMEOUT)
    times["provisioned images"] = time.monotonic() - t0
    missing = provisioned_missing()
    if missing:
        pytest.fail(
            f"no '{IMAGE}' fleet image for {', '.join(missing)}: run `make fleet-provisioned` first", pytrace=False
        )
    f = Fleet(state_parent, port_base, **env)
    t0 = time.monotonic()
    try:
        f.cmd("up", *up_args, "--image", IMAGE)
        times["boot"] = time.monotonic() - t0
        yield f
    finally:
        f.cmd("down", check=False, timeout=600)


def record_for(
    testenv, app: str, version: str, tmp: Path, *, platforms: list, repo=None, build_args=None, context=None
) -> dict:
    """Build and push one version of the test app (or of ``context``), and write its release record (schema 1,
    through ``_release_record``, the release's own writer).

    ``app`` is the release's name (the container's name on the devices); ``repo`` the repository, under the test
    environment's registry (default ``fleet-test/<app>``).
    """
    registry = testenv["registry"]
    repo = f"{registry}/{repo or 'fleet-test/' + app}"
    options = {
        "context": str(context or APP_DIR),
        "platforms": platforms,
        "tags": [f"{repo}:{version}"],
        "build_args": {"BASE": f"{registry}/library/busybox:latest", "VERSION": version, **(build_args or {})},
    }
    if context is None:
        options["dockerfile"] = "Dockerfile.fleet"
    built = run_module("fleet.multiarch.image_build", options)
    assert not built.get("failed"), built.get("msg")
    assert sorted(built["platform_digests"]) == sorted(platforms)
    record = ReleaseRecord.from_dict(
        {
            "schema": 1,
            "name": app,
            "repository": repo,
            "tag": version,
            "moving_tags": ["latest"],
            "index_digest": built["digest"],
            "platforms": built["platform_digests"],
            "fingerprint": built["fingerprint"],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "changed": built["changed"],
        },
        "the test's release record",
    )
    path = tmp / f"{version}.json"
    record.write(str(path))  # the schema the release role writes, by the same code
    return {**record.to_dict(), "path": str(path)}


def fleet_ansible_env(**extra: str) -> dict:
    """The environment for ansible commands against the fleet: none of the caller's ANSIBLE_* settings."""
    return clean_env(ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_RETRY_FILES_ENABLED="0", **extra)


def rollout(fleet: Fleet, record: dict, report_dir: Path, on_line=None, **extra):
    """ansible-playbook fleet.multiarch.rollout against the fleet's inventory; (exit code, output, recap, report).

    ``on_line`` is called with each line of the playbook's output as it comes (to act mid-rollout).
    """
    extra_vars = {
        "rollout_release_record": record["path"],
        "rollout_registry_alias": DEVICE_REGISTRY,
        "rollout_insecure_registries": [DEVICE_REGISTRY],
        "rollout_ports": ["8080:8080"],
        # the module's own probe answers as soon as the app listens, before the engine's next HEALTHCHECK run;
        # a HEALTHCHECK that reports unhealthy still fails the deployment
        "rollout_health": {"http": {"url": "http://127.0.0.1:8080/health"}},
        "rollout_health_timeout": 240,
        "rollout_report_dir": str(report_dir),
        "rollout_serial": [1, 2],
        **extra,
    }
    env = fleet_ansible_env()
    argv = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(fleet.state / "inventory.yml"),
        "fleet.multiarch.rollout",
        "-e",
        json.dumps(extra_vars),
    ]
    lines = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        watchdog = threading.Timer(PLAY_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
    output = "".join(lines)
    assert code != -signal.SIGKILL, f"the rollout took more than {PLAY_TIMEOUT} s:\n" + "".join(lines[-200:])
    recap = play_recap(output)
    report_json = report_dir / f"{record['name']}.json"
    report = json.loads(report_json.read_text()) if report_json.is_file() else None
    return code, output, recap, report


def device_state(fleet: Fleet, name: str, app: str, *, uname: bool = False) -> dict:
    """What runs on a device: the container's image and labels, what its port answers, and `uname -m` inside it."""
    script = (
        f"sudo docker inspect --type container {app} --format "
        "'{{.Config.Image}} {{index .Config.Labels \"io.fleet-multiarch.digest\"}} {{.State.StartedAt}}'; "
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=30)"
        '.read().decode().strip())"'
    )
    if uname:  # a `docker exec` costs seconds on an emulated guest
        script += f"; sudo docker exec {app} uname -m"
    lines = fleet.ssh(name, script).stdout.split("\n")
    image, digest, started = lines[0].split()
    return {
        "image": image,
        "digest": digest,
        "started": started,
        "answer": lines[1],
        "uname": lines[2] if uname else "",
    }


def device_states(fleet: Fleet, names, app: str, *, uname: bool = False) -> dict:
    """device_state of several devices at once (one SSH session each)."""
    names = list(names)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(lambda n: device_state(fleet, n, app, uname=uname), names)))


def rows_by_host(report: dict) -> dict:
    return {row["host"]: row for row in report["rows"]}
