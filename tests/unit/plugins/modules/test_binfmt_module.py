"""Unit tests for the binfmt module: main() with patched arguments against a captured binfmt_misc directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt_manager as bm
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import parse_platform
from ansible_collections.fleet.multiarch.plugins.modules import binfmt

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binfmt"
EMULATED = ["aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips64el", "loongarch64"]


def run_main(args: dict, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        binfmt.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def proc(tmp_path, monkeypatch) -> Path:
    """A binfmt_misc directory holding the entries captured from Debian 12 (update-binfmts, flags PF)."""
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    for name in [f"qemu-{t}" for t in EMULATED] + ["jar", "python3.11", "status"]:
        shutil.copy(FIXTURES / "proc" / name, root / name)
    (root / "register").write_text("")
    monkeypatch.setattr(bf, "PROC_ROOT", str(root))
    return root


@pytest.fixture
def emulators(tmp_path) -> Path:
    """A directory with a static 'emulator' per target (the probes are static ELF files)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for target in bf.QEMU_TABLE:
        path = bindir / f"qemu-{target}-static"
        path.write_bytes(bf.build_probe(target))
        path.chmod(0o755)
    return bindir


@pytest.fixture
def amd64_host(monkeypatch):
    monkeypatch.setattr(binfmt, "host_platform", lambda: parse_platform("linux/amd64"))


def test_check_mode_plans_replacing_debian_entries(proc, emulators, amd64_host, tmp_path, capsys):
    result = run_main(
        {
            "platforms": ["arm64", "linux/arm/v7", "amd64", "386"],
            "emulator_path": str(emulators),
            "persist": True,
            "persist_dir": str(tmp_path / "binfmt.d"),
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result["changed"] is True
    assert [p["name"] for p in result["platforms"]] == ["qemu-aarch64", "qemu-arm"]
    assert result["platforms"][0] == {
        "name": "qemu-aarch64",
        "platform": "linux/arm64",
        "machines": ["aarch64"],
        "target": "aarch64",
        "registered": True,
        "enabled": True,
        "interpreter": f"{emulators}/qemu-aarch64-static",
        "flags": "POCF",
    }
    assert [s["platform"] for s in result["skipped_platforms"]] == ["linux/386", "linux/amd64"]
    assert "runs natively" in result["skipped_platforms"][0]["reason"]
    # what uname -m may print in such a container: a 32-bit x86 one on this 64-bit kernel says x86_64
    assert result["skipped_platforms"][0]["machines"] == ["i686", "i386", "x86_64"]
    assert result["replaced"][0] == {
        "name": "qemu-aarch64",
        "old_interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "old_flags": "PF",
        "new_name": "qemu-aarch64",
        "new_interpreter": f"{emulators}/qemu-aarch64-static",
        "new_flags": "POCF",
    }
    assert [p["path"] for p in result["persisted"]] == [
        str(tmp_path / "binfmt.d" / "qemu-aarch64.conf"),
        str(tmp_path / "binfmt.d" / "qemu-arm.conf"),
    ]
    assert result["supported"][:5] == ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
    assert result["verified"] == []  # check mode verifies only unchanged entries
    # check mode changed nothing
    assert (proc / "register").read_text() == ""
    assert not (tmp_path / "binfmt.d").exists()
    # the diff shows the kernel entries before and after, then each file
    kernel, *files = result["diff"]
    assert "aarch64-binfmt-P:PF" in kernel["before"]
    assert "qemu-aarch64-static:POCF" in kernel["after"]
    assert "jar" not in kernel["before"]
    assert len(files) == 2
    assert files[0]["before"] == ""
    assert files[0]["after"].splitlines()[1].startswith(":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46")


def test_check_mode_converged_entries_report_no_change(proc, emulators, amd64_host, capsys):
    line = bf.render_register_line(
        bf.desired_entry("riscv64", "qemu-riscv64", f"{emulators}/qemu-riscv64-static", "PF")
    )
    (proc / "qemu-riscv64").write_text(
        "enabled\ninterpreter {}\nflags: PF\noffset 0\nmagic {}\nmask {}\n".format(
            line.split(":")[6], bf.QEMU_TABLE["riscv64"].magic.hex(), bf.QEMU_TABLE["riscv64"].mask.hex()
        )
    )
    result = run_main(
        {
            "platforms": ["riscv64"],
            "flags": "FP",
            "emulator_path": str(emulators),
            "persist": False,
            "verify": False,
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result["changed"] is False
    assert result["replaced"] == []
    assert result["platforms"][0]["flags"] == "PF"


def test_absent_in_check_mode(proc, amd64_host, tmp_path, capsys):
    persist = tmp_path / "binfmt.d"
    persist.mkdir()
    (persist / "qemu-arm.conf").write_text("x")
    (persist / "qemu-alpha.conf").write_text("x")
    (persist / "other.conf").write_text("x")
    result = run_main(
        {"platforms": ["arm"], "state": "absent", "persist_dir": str(persist), "_ansible_check_mode": True},
        capsys,
    )
    assert result["changed"] is True
    assert result["removed"] == ["qemu-arm"]
    assert result["persisted"] == [{"path": str(persist / "qemu-arm.conf"), "action": "removed"}]
    assert result["platforms"][0]["registered"] is False
    assert (persist / "qemu-arm.conf").exists()

    result = run_main(
        {"platforms": ["all"], "state": "absent", "persist_dir": str(persist), "_ansible_check_mode": True},
        capsys,
    )
    assert result["removed"] == [f"qemu-{t}" for t in sorted(EMULATED)]
    assert [Path(p["path"]).name for p in result["persisted"]] == ["qemu-alpha.conf", "qemu-arm.conf"]


def test_missing_emulators_name_the_package(proc, amd64_host, tmp_path, capsys):
    result = run_main(
        {"platforms": ["arm64", "s390x"], "emulator_path": str(tmp_path), "_ansible_check_mode": True}, capsys
    )
    assert result["failed"] is True
    assert "linux/arm64: no static QEMU emulator qemu-aarch64-static" in result["msg"]
    assert "linux/s390x" in result["msg"]
    assert "qemu-user-static" in result["msg"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"platforms": ["sparc64"]}, ["unknown architecture 'sparc64'", "linux/arm64", "linux/arm/v7"]),
        ({"platforms": ["arm64/v7"]}, ["no variant 'v7'", "linux/arm/v7"]),
        ({"platforms": ["windows/arm64"]}, ["Linux binaries only"]),
        ({"platforms": ["arm64"], "flags": "FX"}, ["invalid binfmt flags", "unknown X"]),
    ],
)
def test_bad_input_fails_clearly(args, words, capsys):
    result = run_main(args, capsys)
    assert result["failed"] is True
    for word in words:
        assert word in result["msg"]


def test_not_root_fails(monkeypatch, capsys):
    monkeypatch.setattr(bm.os, "geteuid", lambda: 1000)
    result = run_main({"platforms": ["arm64"]}, capsys)
    assert result["failed"] is True
    assert "needs root" in result["msg"]
    assert "become: true" in result["msg"]


def test_non_linux_fails(monkeypatch, capsys):
    monkeypatch.setattr(binfmt.pyplatform, "system", lambda: "Darwin")
    result = run_main({"platforms": ["arm64"]}, capsys)
    assert result["failed"] is True
    assert "Linux only" in result["msg"]
    assert "Darwin" in result["msg"]


@pytest.mark.usefixtures("proc", "amd64_host")
@pytest.mark.parametrize("systemd_binfmt", [True, False])
def test_persist_defaults_to_whether_systemd_binfmt_exists(emulators, tmp_path, capsys, monkeypatch, systemd_binfmt):
    monkeypatch.setattr(bf, "systemd_binfmt_present", lambda: systemd_binfmt)
    persist = tmp_path / "binfmt.d"
    args = {"platforms": ["arm64"], "emulator_path": str(emulators), "persist_dir": str(persist), "verify": False}
    result = run_main({**args, "_ansible_check_mode": True}, capsys)
    written = [p["path"] for p in result["persisted"]]
    assert written == ([str(persist / "qemu-aarch64.conf")] if systemd_binfmt else [])


def test_unmounted_binfmt_misc_is_mounted(proc, emulators, amd64_host, capsys, monkeypatch):
    (proc / "register").unlink()
    monkeypatch.setattr(bf.BinfmtMisc, "in_kernel", lambda self: True)
    args = {"platforms": ["arm64"], "emulator_path": str(emulators), "persist": False, "verify": False}
    result = run_main({**args, "_ansible_check_mode": True}, capsys)
    assert (result["changed"], result["mounted"]) == (True, True)
    assert not (proc / "register").exists()  # check mode mounts nothing
