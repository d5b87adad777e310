"""The emulated ARM fleet (scripts/fleet.sh), tested like product code.

The module boots its own fleet - one arm64 and one armhf guest - with a state directory and a port
range of its own, so that it neither disturbs nor depends on a fleet that `make` brought up for other
tests; it shares the machine's image cache, which is what makes the second bring-up quick. Boots are
slow under emulation (a minute or two each), so the guests boot once for the module's tests, and
the last test replaces them by guests booted from a snapshot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

import pytest

from .helpers import VENV_BIN, clean_env, qemu_processes_of, run

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "scripts" / "fleet.sh"
CACHE = Path(os.environ.get("FLEET_TESTENV_CACHE", "/var/cache/fleet-multiarch-testenv")) / "fleet"
PORT_BASE = "12400"
UNAME = {"arm64": "aarch64", "armhf": "armv7l"}
SNAPSHOT = "fleet-test"
# A fresh build of both images takes many minutes on two shared cores; booting takes a few.
BUILD_AND_BOOT_TIMEOUT = 3600


class Fleet:
    """One fleet under test: its own state directory, the shared cache."""

    def __init__(self, state_parent: Path):
        self.state = state_parent / "fleet"
        self.env = dict(os.environ, FLEET_TESTENV_STATE=str(state_parent), FLEET_PORT_BASE=PORT_BASE)

    def cmd(self, *args: str, check: bool = True, timeout: int = BUILD_AND_BOOT_TIMEOUT):
        return run([str(FLEET), *args], check=check, timeout=timeout, env=self.env)

    def facts(self) -> dict:
        return json.loads((self.state / "fleet.json").read_text())

    def guests(self) -> dict[str, dict]:
        return {g["name"]: g for g in self.facts()["guests"]}

    def ssh(self, guest: dict, command: str, *, check: bool = True, timeout: int = 120):
        return self.cmd("ssh", guest["name"], command, check=check, timeout=timeout)

    def qemu_processes(self) -> list[str]:
        """Command lines of QEMU processes that use a disk of this fleet, read from /proc."""
        return qemu_processes_of(self.state)


def _cache_files() -> dict[str, tuple[int, float]]:
    """Inode and mtime of every cached base image, kernel and initramfs: what a rebuild would replace."""
    return {
        str(p): (p.stat().st_ino, p.stat().st_mtime)
        for arch in UNAME
        for p in (CACHE / arch / name for name in ("base.qcow2", "vmlinuz", "initrd.img"))
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, testenv):
    """One arm64 and one armhf guest, booted once for the module, always taken down at the end."""
    f = Fleet(tmp_path_factory.mktemp("fleet-state"))
    try:
        up = f.cmd("up", "--arm64", "1", "--armhf", "1")
        f.first_up_log = up.stderr
        yield f
    finally:
        f.cmd("down", check=False, timeout=600)


def test_up_boots_one_guest_of_each_kind_and_writes_facts(fleet):
    guests = fleet.guests()
    assert sorted(g["arch"] for g in guests.values()) == ["arm64", "armhf"]
    # arm64 guest N listens on PORT_BASE + N, armhf guest N on PORT_BASE + 100 + N
    assert {g["arch"]: g["port"] for g in guests.values()} == {
        "arm64": int(PORT_BASE) + 1,
        "armhf": int(PORT_BASE) + 101,
    }
    for g in guests.values():
        assert g["image"] == "base"
        assert isinstance(g["boot_seconds"], int)
    assert "fleet up in" in fleet.first_up_log


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_guest_answers_ssh_as_the_right_architecture(fleet, arch):
    (guest,) = [g for g in fleet.guests().values() if g["arch"] == arch]
    proc = fleet.ssh(guest, "uname -m; python3 --version; id -un; sudo -n id -u; hostname")
    machine, python, user, root_uid, hostname = proc.stdout.split("\n")[:5]
    assert machine == UNAME[arch]
    assert re.fullmatch(r"Python 3\.\d+\.\d+", python)
    assert (user, root_uid, hostname) == ("pi", "0", guest["name"])


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_guest_is_a_fresh_pi_os_lite_like_system_without_docker(fleet, arch):
    (guest,) = [g for g in fleet.guests().values() if g["arch"] == arch]
    proc = fleet.ssh(
        guest,
        "systemctl is-system-running --wait || true; "
        "command -v docker dockerd containerd || echo no-engine; cat /proc/cmdline",
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    # "degraded" would mean a unit failed at boot: a guest must come up clean.
    assert lines[0] == "running", proc.stdout
    assert "no-engine" in lines
    assert "apparmor=0" in proc.stdout


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_guest_reaches_the_host_registry_at_10_0_2_2(fleet, testenv, arch):
    (guest,) = [g for g in fleet.guests().values() if g["arch"] == arch]
    port = testenv["registry"].rsplit(":", 1)[1]
    code = f"import urllib.request; print(urllib.request.urlopen('http://10.0.2.2:{port}/v2/', timeout=30).status)"
    proc = fleet.ssh(guest, f'python3 -c "{code}"')
    assert proc.stdout.strip() == "200"


def test_ansible_reaches_every_device_through_the_written_inventory(fleet):
    inventory = fleet.state / "inventory.yml"
    listed = json.loads(run([str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--list"]).stdout)
    guests = fleet.guests()
    assert sorted(listed["devices"]["children"]) == ["arm64", "armhf"]
    for arch in UNAME:
        assert listed[arch]["hosts"] == [n for n, g in guests.items() if g["arch"] == arch]
    hostvars = listed["_meta"]["hostvars"]
    for name, g in guests.items():
        assert hostvars[name]["ansible_port"] == g["port"]
        assert hostvars[name]["ansible_python_interpreter"] == "/usr/bin/python3"
        assert "ControlPersist" in hostvars[name]["ansible_ssh_common_args"]

    # The adhoc command's own output (the minimal callback): "NAME | SUCCESS => {...}" and, for a
    # command, "NAME | CHANGED | rc=0 >>" followed by its output.
    env = clean_env(ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_HOST_KEY_CHECKING="0")
    adhoc = [str(VENV_BIN / "ansible"), "-i", str(inventory), "devices"]
    ping = run([*adhoc, "-m", "ansible.builtin.ping"], env=env, check=False, timeout=600)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert sorted(re.findall(r"^(\S+) \| SUCCESS => \{", ping.stdout, re.M)) == sorted(guests)
    assert ping.stdout.count('"ping": "pong"') == len(guests)

    become = run([*adhoc, "-b", "-m", "ansible.builtin.command", "-a", "uname -m"], env=env, check=False, timeout=600)
    assert become.returncode == 0, become.stdout + become.stderr
    machines = dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", become.stdout, re.M))
    assert machines == {name: UNAME[g["arch"]] for name, g in guests.items()}


def test_status_lists_the_guests_and_up_again_keeps_them(fleet):
    before = fleet.guests()
    status = fleet.cmd("status").stdout
    for name, g in before.items():
        assert re.search(rf"^{name}\s+{g['arch']}\s+{g['port']}\s+{g['pid']}\s+base\s+yes$", status, re.M), status
    t0 = time.monotonic()
    again = fleet.cmd("up", "--arm64", "1", "--armhf", "1")
    assert "already up" in again.stderr
    assert time.monotonic() - t0 < 120
    assert {n: g["pid"] for n, g in fleet.guests().items()} == {n: g["pid"] for n, g in before.items()}


def test_up_with_a_snapshot_that_does_not_exist_fails_and_keeps_the_fleet(fleet):
    before = fleet.guests()
    proc = fleet.cmd("up", "--image", "no-such-snapshot", check=False)
    assert proc.returncode != 0
    assert "snapshot-provisioned --name no-such-snapshot" in proc.stderr
    assert fleet.guests() == before
    assert len(fleet.qemu_processes()) == 2


def test_snapshot_boots_again_from_the_cache_and_down_leaves_nothing(fleet):
    """What the provisioned image is made of: a guest's changes, kept and booted again.

    A marker file stands in for the Docker engine the device role will install. The second bring-up
    must reuse the cached images (not one of them rebuilt), and `down` must leave no QEMU behind.
    """
    guests = fleet.guests()
    marker = secrets.token_hex(8)
    for g in guests.values():
        fleet.ssh(g, f"echo {marker} | sudo tee /var/lib/fleet-marker >/dev/null; cat /etc/machine-id > ~/machine-id")
    cached = _cache_files()
    try:
        snap = fleet.cmd("snapshot-provisioned", "--name", SNAPSHOT, "--recipe", marker, timeout=600)
        assert snap.stderr.count(f"] {SNAPSHOT} image of") == 2, snap.stderr
        for arch in UNAME:
            assert fleet.cmd("provisioned-recipe", arch, SNAPSHOT).stdout.strip() == marker
        fleet.cmd("down", timeout=600)
        assert fleet.qemu_processes() == []

        t0 = time.monotonic()
        up = fleet.cmd("up", "--arm64", "1", "--armhf", "1", "--image", SNAPSHOT)
        elapsed = time.monotonic() - t0
        assert "images up to date" in up.stderr and "building" not in up.stderr, up.stderr
        assert _cache_files() == cached
        for g in fleet.guests().values():
            assert g["image"] == SNAPSHOT
            proc = fleet.ssh(g, "sudo cat /var/lib/fleet-marker; cat ~/machine-id; cat /etc/machine-id; uname -m")
            kept, old_id, new_id, machine = proc.stdout.split()
            assert kept == marker
            assert machine == UNAME[g["arch"]]
            assert re.fullmatch(r"[0-9a-f]{32}", new_id) and new_id != old_id
        print(f"second bring-up from the cache and the snapshot: {elapsed:.0f} s")

        down = fleet.cmd("down", timeout=600)
        assert "no QEMU process of the fleet is left" in down.stderr
        assert fleet.qemu_processes() == []
        assert not (fleet.state / "inventory.yml").exists()
        assert "pi-arm64-1" not in fleet.cmd("status").stdout
    finally:
        fleet.cmd("drop-snapshot", SNAPSHOT, check=False)
