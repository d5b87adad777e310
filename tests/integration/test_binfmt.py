"""Integration tests of fleet.multiarch.binfmt and binfmt_info on this machine's real kernel.

The host's own qemu-* registrations serve the test environment's emulated builds while these tests run, so:
tests register entries named ``fleet-test-*`` (never removing the real ones), and the tests that must touch a
real ``qemu-*`` entry use qemu-loongarch64 (which no build here uses) or restore the exact previous
registration at once. A module-wide finalizer restores every qemu-* entry and removes every fleet-test-* entry.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf

from .helpers import run, run_module

PROC = Path(bf.PROC_ROOT)
PREFIX = "fleet-test-"
EMULATED = ["aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips64el", "loongarch64"]
ALL_FOREIGN = ["arm64", "linux/arm/v7", "riscv64", "ppc64le", "s390x", "mips64le", "loong64", "amd64", "386"]
SYSTEMD_BINFMT = next((p for p in bf.SYSTEMD_BINFMT if os.path.exists(p)), None)


def read_entries() -> dict:
    return bf.BinfmtMisc(run_command=None).entries()


def register_raw(entry: dict) -> None:
    (PROC / "register").write_text(bf.render_register_line(entry))


def remove_raw(name: str) -> None:
    if (PROC / name).exists():
        (PROC / name).write_text("-1")


def restore(snapshot: dict) -> None:
    """Put every snapshotted qemu-* entry back exactly (register first, so there is no gap) and drop ours."""
    now = read_entries()
    for name, entry in snapshot.items():
        have = now.get(name)
        if have == entry:
            continue
        if have is not None:
            remove_raw(name)
        register_raw(entry)
        if not entry["enabled"]:
            (PROC / name).write_text("0")
    drop_ours()


def drop_ours() -> None:
    """Remove every entry registered under the test prefix."""
    for name in read_entries():
        if name.startswith(PREFIX):
            remove_raw(name)


@pytest.fixture(scope="module", autouse=True)
def host_ready():
    if os.uname().sysname != "Linux":
        pytest.skip("binfmt_misc needs a Linux kernel")
    if os.geteuid() != 0:
        pytest.skip("registering binfmt_misc entries needs root")
    if not (PROC / "register").exists():
        pytest.skip(f"binfmt_misc is not mounted on {PROC}")
    missing = [t for t in EMULATED if not Path(f"/usr/bin/qemu-{t}-static").exists()]
    if missing:
        pytest.skip(f"qemu-user-static lacks {', '.join(missing)} (install qemu-user-static)")
    snapshot = {n: e for n, e in read_entries().items() if n.startswith("qemu-")}
    try:
        yield snapshot
    finally:
        restore(snapshot)


@pytest.fixture
def real_entry(host_ready):
    """Restore one real qemu-* entry right after the test that replaces it."""
    touched = []

    def keep(name: str) -> dict:
        touched.append(name)
        return host_ready.get(name)

    yield keep
    restore({n: host_ready[n] for n in touched if n in host_ready})


def run_info(check_mode: bool = False) -> dict:
    return run_module("fleet.multiarch.binfmt_info", {}, check_mode=check_mode)


def probe_file(tmp_path: Path, target: str, code: int = bf.PROBE_EXIT_CODE) -> Path:
    path = tmp_path / f"probe-{target}-{code}"
    path.write_bytes(bf.build_probe(target, code))
    path.chmod(0o755)
    return path


def test_probes_run_under_their_emulators(tmp_path):
    for target in bf.QEMU_TABLE:
        emulator = f"/usr/bin/qemu-{target}-static"
        for code in (42, 7):
            proc = run([emulator, str(probe_file(tmp_path, target, code))], check=False, timeout=60)
            assert proc.returncode == code, (target, proc.stderr)


def test_argv0_probes_tell_a_preserved_argv0_from_a_lost_one(tmp_path):
    """Run by each emulator with and without QEMU's -0 (what binfmt's P flag hands it): 65 ("A") or 47 ("/")."""
    for target in bf.QEMU_TABLE:
        path = tmp_path / f"argv0-{target}"
        path.write_bytes(bf.build_argv0_probe(target))
        path.chmod(0o755)
        emulator = f"/usr/bin/qemu-{target}-static"
        kept = run([emulator, "-0", bf.ARGV0_PROBE_NAME, str(path)], check=False, timeout=60)
        lost = run([emulator, str(path)], check=False, timeout=60)
        assert (kept.returncode, lost.returncode) == (bf.ARGV0_PRESERVED, bf.ARGV0_LOST), (target, kept.stderr)


def test_a_registration_that_would_break_busybox_is_caught():
    """Flags F alone: the emulator runs the probe, but argv[0] is lost, so verification fails and says why.

    qemu-loongarch64 under the test prefix: no build of the test environment uses it.
    """
    name = PREFIX + "loongarch64"
    args = {"platforms": ["loong64"], "name_prefix": PREFIX, "replace_conflicting": False, "persist": False}
    try:
        broken = run_module("fleet.multiarch.binfmt", dict(args, flags="F"))
        assert broken.get("failed") is True, broken
        assert broken["changed"] is True  # the entry was registered, and the result says so
        assert "linux/loong64: the emulator runs, but without the P flag (flags F)" in broken["msg"]
        assert "busybox" in broken["msg"] and "add P to flags" in broken["msg"]
        assert broken["verified"] == []
        assert read_entries()[name]["flags"] == "F"
        kept = run_module("fleet.multiarch.binfmt", dict(args, flags="F", verify=False))
        assert kept.get("failed") is not True and kept["changed"] is False, kept
        fixed = run_module("fleet.multiarch.binfmt", args)
        assert fixed["changed"] is True and fixed["verified"] == ["linux/loong64"], fixed
        assert read_entries()[name]["flags"] == "POCF"
    finally:
        remove_raw(name)


def test_probes_run_directly_through_binfmt(tmp_path):
    """Executed as programs: the kernel hands each one to the registered emulator (or runs it natively).

    The test environment registers the platforms it emulates; every other target of the table is registered
    here (under the test prefix, not persisted) and removed afterwards.
    """
    args = {"platforms": ALL_FOREIGN, "name_prefix": PREFIX, "replace_conflicting": False, "persist": False}
    registered = run_module("fleet.multiarch.binfmt", args)
    assert registered.get("failed") is not True, registered
    try:
        for target in bf.QEMU_TABLE:
            proc = subprocess.run([str(probe_file(tmp_path, target, 9))], check=False, timeout=60)
            assert proc.returncode == 9, target
    finally:
        drop_ours()


def test_register_check_mode_idempotence_verify_and_persist(tmp_path):
    persist = tmp_path / "binfmt.d"
    args = {
        "platforms": ALL_FOREIGN,
        "name_prefix": PREFIX,
        "replace_conflicting": False,
        "persist": True,
        "persist_dir": str(persist),
    }
    names = [PREFIX + t for t in EMULATED]

    checked = run_module("fleet.multiarch.binfmt", args, check_mode=True, diff=True)
    assert checked.get("failed") is not True, checked
    assert checked["changed"] is True
    assert [p["name"] for p in checked["platforms"]] == names
    assert not any((PROC / n).exists() for n in names), "check mode registered an entry"
    assert not persist.exists(), "check mode wrote a file"
    assert "qemu-aarch64-static:POCF" in checked["diff"][0]["after"]

    applied = run_module("fleet.multiarch.binfmt", args, diff=True)
    assert applied.get("failed") is not True, applied
    assert applied["changed"] is True
    assert applied["verified"] == [
        "linux/arm64",
        "linux/arm/v7",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
        "linux/mips64le",
        "linux/loong64",
    ]
    assert {s["platform"] for s in applied["skipped_platforms"]} == {"linux/amd64", "linux/386"}
    assert applied["supported"][:2] == ["linux/amd64", "linux/386"]
    for want in ("linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/riscv64", "linux/s390x"):
        assert want in applied["supported"]
    entries = read_entries()
    for item in applied["platforms"]:
        kernel = entries[item["name"]]
        assert item["enabled"] is kernel["enabled"] is True
        assert item["interpreter"] == kernel["interpreter"] == f"/usr/bin/qemu-{item['target']}-static"
        assert item["flags"] == kernel["flags"] == "POCF"
        assert bytes.fromhex(kernel["magic"]) == bf.QEMU_TABLE[item["target"]].magic
        assert bytes.fromhex(kernel["mask"]) == bf.QEMU_TABLE[item["target"]].mask

    # the persisted files hold exactly the register line, and it describes what the kernel has
    assert sorted(p.name for p in persist.iterdir()) == sorted(n + ".conf" for n in names)
    text = (persist / f"{PREFIX}aarch64.conf").read_text()
    assert text == (
        f"{bf.PERSIST_HEADER}\n"
        rf":{PREFIX}aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
        r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
        ":/usr/bin/qemu-aarch64-static:POCF\n"
    )
    for name in names:
        line = (persist / f"{name}.conf").read_text().splitlines()[1]
        assert bf.same_registration(entries[name], bf.parse_register_line(line))

    again = run_module("fleet.multiarch.binfmt", args, check_mode=True)
    assert again["changed"] is False, again
    again = run_module("fleet.multiarch.binfmt", args)
    assert again["changed"] is False, again
    assert len(again["verified"]) == 7

    removed = run_module(
        "fleet.multiarch.binfmt",
        {"platforms": ["all"], "state": "absent", "name_prefix": PREFIX, "persist_dir": str(persist)},
    )
    assert removed["changed"] is True
    assert sorted(removed["removed"]) == sorted(names)
    assert not any((PROC / n).exists() for n in names)
    assert list(persist.iterdir()) == []
    assert (PROC / "qemu-aarch64").exists(), "absent removed an entry outside its prefix"
    removed = run_module(
        "fleet.multiarch.binfmt",
        {"platforms": ["all"], "state": "absent", "name_prefix": PREFIX, "persist_dir": str(persist)},
    )
    assert removed["changed"] is False


@pytest.mark.skipif(SYSTEMD_BINFMT is None, reason="systemd-binfmt is not installed")
def test_systemd_binfmt_reads_the_persisted_file(tmp_path):
    persist = tmp_path / "binfmt.d"
    args = {
        "platforms": ["loong64"],
        "name_prefix": PREFIX,
        "replace_conflicting": False,
        "persist": True,
        "persist_dir": str(persist),
    }
    result = run_module("fleet.multiarch.binfmt", args)
    assert result["changed"] is True, result
    name = PREFIX + "loongarch64"
    registered = read_entries()[name]
    remove_raw(name)
    assert not (PROC / name).exists()
    # with a file argument systemd-binfmt applies only that file (no flush of other entries)
    run([SYSTEMD_BINFMT, str(persist / f"{name}.conf")])
    assert read_entries()[name] == registered
    assert run_module("fleet.multiarch.binfmt", args)["changed"] is False


def test_replace_an_entry_with_other_interpreter_and_flags(tmp_path):
    name = PREFIX + "s390x"
    debian_like = bf.desired_entry("s390x", name, "/usr/libexec/qemu-binfmt/s390x-binfmt-P", "PF")
    register_raw(debian_like)
    args = {"platforms": ["s390x"], "name_prefix": PREFIX, "replace_conflicting": False, "persist": False}
    checked = run_module("fleet.multiarch.binfmt", args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert read_entries()[name]["flags"] == "PF", "check mode replaced the entry"
    result = run_module("fleet.multiarch.binfmt", args, diff=True)
    assert result["changed"] is True
    assert result["replaced"] == [
        {
            "name": name,
            "old_interpreter": "/usr/libexec/qemu-binfmt/s390x-binfmt-P",
            "old_flags": "PF",
            "new_name": name,
            "new_interpreter": "/usr/bin/qemu-s390x-static",
            "new_flags": "POCF",
        }
    ]
    assert "s390x-binfmt-P:PF" in result["diff"][0]["before"]
    assert "qemu-s390x-static:POCF" in result["diff"][0]["after"]
    assert read_entries()[name]["interpreter"] == "/usr/bin/qemu-s390x-static"
    assert result["verified"] == ["linux/s390x"]
    assert run_module("fleet.multiarch.binfmt", args)["changed"] is False

    flagged = run_module("fleet.multiarch.binfmt", dict(args, flags="PF"))
    assert flagged["changed"] is True
    assert read_entries()[name]["flags"] == "PF"
    assert run_module("fleet.multiarch.binfmt", dict(args, flags="FP"))["changed"] is False


def test_disabled_entry_is_enabled():
    name = PREFIX + "ppc64le"
    register_raw(bf.desired_entry("ppc64le", name, "/usr/bin/qemu-ppc64le-static", "PCF"))
    (PROC / name).write_text("0")
    args = {"platforms": ["ppc64le"], "name_prefix": PREFIX, "replace_conflicting": False, "persist": False}
    result = run_module("fleet.multiarch.binfmt", args)
    assert result["changed"] is True
    assert result["replaced"] == []
    assert read_entries()[name]["enabled"] is True


def test_real_qemu_entry_converges_and_conflicts_are_replaced(real_entry, tmp_path):
    """Default names on a real entry (qemu-loongarch64: no build here uses it), restored afterwards."""
    before = real_entry("qemu-loongarch64")
    args = {"platforms": ["loongarch64"], "persist": True, "persist_dir": str(tmp_path)}
    result = run_module("fleet.multiarch.binfmt", args, diff=True)
    assert result.get("failed") is not True, result
    wanted = bf.desired_entry("loongarch64", "qemu-loongarch64", "/usr/bin/qemu-loongarch64-static", "PCF")
    if before is not None and not bf.same_registration(before, wanted):  # e.g. Debian's binfmt-support entry
        assert result["changed"] is True
        assert result["replaced"][0]["old_interpreter"] == before["interpreter"]
        assert result["replaced"][0]["old_flags"] == before["flags"]
    assert result["platforms"][0]["name"] == "qemu-loongarch64"
    assert read_entries()["qemu-loongarch64"]["interpreter"] == "/usr/bin/qemu-loongarch64-static"
    assert (tmp_path / "qemu-loongarch64.conf").is_file()
    assert run_module("fleet.multiarch.binfmt", args)["changed"] is False

    # an entry under another name that catches the same binaries is replaced (registered first: no gap)
    other = run_module("fleet.multiarch.binfmt", {"platforms": ["loong64"], "name_prefix": PREFIX, "persist": False})
    assert other["changed"] is True
    assert [r["name"] for r in other["replaced"]] == ["qemu-loongarch64"]
    assert other["removed"] == ["qemu-loongarch64"]
    assert "qemu-loongarch64" not in read_entries()
    assert other["verified"] == ["linux/loong64"]


def test_verify_fails_when_the_emulator_does_not_run(tmp_path):
    """A 'qemu-loongarch64-static' that is really a native program exiting 3: registration works, running does not."""
    fake_dir = tmp_path / "bin"
    fake_dir.mkdir()
    fake = fake_dir / "qemu-loongarch64-static"
    fake.write_bytes(bf.build_probe(os.uname().machine if os.uname().machine in bf.QEMU_TABLE else "x86_64", 3))
    fake.chmod(0o755)
    args = {
        "platforms": ["loong64"],
        "name_prefix": PREFIX,
        "replace_conflicting": False,
        "persist": False,
        "emulator_path": str(fake_dir),
    }
    result = run_module("fleet.multiarch.binfmt", args)
    try:
        assert result.get("failed") is True
        assert "emulation does not work as registered for linux/loong64" in result["msg"]
        assert "exited 3, expected 65" in result["msg"]
        assert result["changed"] is True  # the registration happened and is reported
    finally:
        remove_raw(PREFIX + "loongarch64")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"platforms": ["sparc64"]}, ["unknown architecture 'sparc64'", "linux/arm64", "linux/arm/v7"]),
        ({"platforms": ["linux/armv7"]}, ["write 'linux/arm/v7'"]),
        ({"platforms": ["arm64"], "flags": "Q"}, ["invalid binfmt flags 'Q'"]),
        (
            {"platforms": ["arm64"], "emulator_path": "/nonexistent", "name_prefix": PREFIX},
            ["linux/arm64: no static QEMU emulator qemu-aarch64-static in /nonexistent", "qemu-user-static"],
        ),
    ],
)
def test_clear_errors(args, words):
    result = run_module("fleet.multiarch.binfmt", args)
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"]
    assert not (PROC / (PREFIX + "aarch64")).exists()


def test_binfmt_info_reports_the_kernel():
    result = run_info()
    assert result["changed"] is False
    assert result["mounted"] is True
    assert result["status_enabled"] is True
    assert result["host_platform"] == "linux/amd64" or result["host_platform"].startswith("linux/")
    entries = {e["name"]: e for e in result["entries"]}
    assert entries.keys() == read_entries().keys()
    aarch64 = next(e for e in result["entries"] if e["platform"] == "linux/arm64" and e["enabled"])
    assert set(aarch64) >= {"name", "enabled", "interpreter", "flags", "offset", "magic", "mask"}
    assert "F" in aarch64["flags"]
    for want in ("linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/ppc64le", "linux/s390x"):
        assert want in result["emulated"]
        assert want in result["supported"]
    checked = run_info(check_mode=True)
    assert checked["entries"] == result["entries"]
