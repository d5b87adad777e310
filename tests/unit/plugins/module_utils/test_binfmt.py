"""Unit tests for _binfmt: QEMU's table, parsing captured kernel text, planning, rendering, ELF probes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    parse_elf_header,
    parse_platform,
    platform_from_qemu_target,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binfmt"
DEBIAN_BINFMTS = Path("/usr/share/binfmts")
EMULATED = ["aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips64el", "loongarch64"]


def fixture(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


# ------------------------------------------------------------------------------------------ the table


def test_table_covers_every_known_platform():
    assert set(bf.QEMU_TABLE) == {
        "aarch64",
        "arm",
        "riscv64",
        "ppc64le",
        "s390x",
        "i386",
        "mips64el",
        "loongarch64",
        "x86_64",
    }
    for target, row in bf.QEMU_TABLE.items():
        assert row.target == target
        assert len(row.magic) == len(row.mask) == 20
        assert row.magic[:4] == b"\x7fELF"
        platform_from_qemu_target(target)  # every row maps to a platform


@pytest.mark.parametrize("target", EMULATED)
def test_table_equals_captured_debian_files(target):
    """The captured /usr/share/binfmts files of Debian 12's qemu-user-static (QEMU 7.2)."""
    data = bf.parse_debian_binfmts(fixture("debian-binfmts", f"qemu-{target}"))
    assert bf.unescape_bytes(data["magic"]) == bf.QEMU_TABLE[target].magic
    assert bf.unescape_bytes(data["mask"]) == bf.QEMU_TABLE[target].mask
    assert data["offset"] == "0"


@pytest.mark.skipif(
    not DEBIAN_BINFMTS.joinpath("qemu-aarch64").is_file(),
    reason="Debian's qemu-user-static is not installed (no /usr/share/binfmts/qemu-aarch64)",
)
@pytest.mark.parametrize("target", EMULATED)
def test_table_equals_installed_debian_files(target):
    path = DEBIAN_BINFMTS / f"qemu-{target}"
    if not path.is_file():
        pytest.skip(f"{path} is not installed by this qemu-user-static version")
    data = bf.parse_debian_binfmts(path.read_text())
    assert bf.unescape_bytes(data["magic"]) == bf.QEMU_TABLE[target].magic
    assert bf.unescape_bytes(data["mask"]) == bf.QEMU_TABLE[target].mask


@pytest.mark.parametrize("target", EMULATED)
def test_table_equals_captured_binfmt_d_files(target):
    entry = bf.parse_register_line(fixture("binfmt.d", f"qemu-{target}.conf"))
    assert entry["name"] == f"qemu-{target}"
    assert bytes.fromhex(entry["magic"]) == bf.QEMU_TABLE[target].magic
    assert bytes.fromhex(entry["mask"]) == bf.QEMU_TABLE[target].mask


def test_each_target_catches_only_its_own_probe():
    for target, row in bf.QEMU_TABLE.items():
        entry = {"type": "magic", "magic": row.magic.hex(), "mask": row.mask.hex(), "offset": 0}
        for other in bf.QEMU_TABLE:
            assert bf.handles(entry, bf.build_probe(other)) == (other == target), (target, other)


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("target", EMULATED)
def test_parse_captured_proc_entries(target):
    entry = bf.parse_entry(f"qemu-{target}", fixture("proc", f"qemu-{target}"))
    assert entry["enabled"] is True
    assert entry["interpreter"] == f"/usr/libexec/qemu-binfmt/{target}-binfmt-P"
    assert entry["flags"] == "PF"
    assert entry["offset"] == 0
    assert entry["type"] == "magic"
    assert bytes.fromhex(entry["magic"]) == bf.QEMU_TABLE[target].magic
    assert bytes.fromhex(entry["mask"]) == bf.QEMU_TABLE[target].mask
    assert bf.target_of(entry) == target


def test_parse_entry_without_mask_and_flags():
    entry = bf.parse_entry("jar", fixture("proc", "jar"))
    assert entry == {
        "name": "jar",
        "enabled": True,
        "interpreter": "/usr/bin/jexec",
        "flags": "",
        "type": "magic",
        "offset": 0,
        "magic": "504b0304",
        "mask": "",
        "extension": "",
    }
    assert bf.target_of(entry) is None


def test_parse_disabled_entry_with_offset():
    entry = bf.parse_entry("fleet-test-disabled", fixture("proc", "fleet-test-disabled"))
    assert entry["enabled"] is False
    assert entry["flags"] == "POCF"
    assert entry["offset"] == 2
    assert entry["magic"] == "00666c656574"
    assert entry["mask"] == "ffffffffffdf"


def test_parse_extension_entry():
    entry = bf.parse_entry("fleet-test-ext", fixture("proc", "fleet-test-ext"))
    assert entry["type"] == "extension"
    assert entry["extension"] == ".fleetx"
    assert not bf.handles(entry, b"\x7fELF" + b"\x00" * 16)
    assert bf.describe(entry).startswith(":fleet-test-ext:E::.fleetx::")


def test_parse_status():
    assert bf.parse_status(fixture("proc", "status")) is True
    assert bf.parse_status("disabled\n") is False


@pytest.mark.parametrize(
    ("text", "data"),
    [
        (r"\x7fELF\x02", b"\x7fELF\x02"),
        (r"\x7f\x45\x4c\x46", b"\x7fELF"),
        (r"\xff\xFE", b"\xff\xfe"),
        (r"a\\b", b"a\\b"),
        ("", b""),
    ],
)
def test_unescape(text, data):
    assert bf.unescape_bytes(text) == data


def test_escape_round_trip():
    data = bytes(range(256))
    assert bf.unescape_bytes(bf.escape_bytes(data)) == data
    assert ":" not in bf.escape_bytes(b":::")


def test_parse_register_line_errors():
    with pytest.raises(bf.BinfmtError, match="not a binfmt registration line"):
        bf.parse_register_line("# comment")
    with pytest.raises(bf.BinfmtError, match="expected :name:type:offset"):
        bf.parse_register_line(":a:M:0")


# ------------------------------------------------------------------------------------------ flags


@pytest.mark.parametrize(
    ("flags", "normal"),
    [
        ("F", "F"),
        ("", ""),
        ("fp", "PF"),
        ("FP", "PF"),
        ("C", "OC"),
        ("CF", "OCF"),
        ("POCF", "POCF"),
        ("FCOP", "POCF"),
        ("FF", "F"),
    ],
)
def test_normalize_flags_in_kernel_order(flags, normal):
    # the order the kernel prints: P O C F, and C implies O (captured in fixtures/binfmt/proc)
    assert bf.normalize_flags(flags) == normal


@pytest.mark.parametrize("flags", ["X", "F,P", "FZ", "F P"])
def test_invalid_flags(flags):
    with pytest.raises(bf.BinfmtError, match="invalid binfmt flags"):
        bf.normalize_flags(flags)


# ------------------------------------------------------------------------------------------ rendering


def test_render_line_is_what_systemd_binfmt_reads():
    entry = bf.desired_entry("aarch64", "qemu-aarch64", "/usr/bin/qemu-aarch64-static", "F")
    line = bf.render_register_line(entry)
    assert line == (
        r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
        r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
        ":/usr/bin/qemu-aarch64-static:F"
    )
    # Debian's /usr/lib/binfmt.d file differs only in interpreter and flags
    debian = fixture("binfmt.d", "qemu-aarch64.conf").strip()
    assert line.split(":")[:6] == debian.split(":")[:6]
    assert bf.parse_register_line(line) == entry


def test_persist_file_content():
    entry = bf.desired_entry("arm", "qemu-arm", "/usr/bin/qemu-arm-static", "CF")
    content = bf.render_persist_file(entry)
    lines = content.splitlines()
    assert content.endswith("\n")
    assert lines[0].startswith("# ")
    assert lines[1] == bf.render_register_line(entry)
    assert lines[1].endswith(":/usr/bin/qemu-arm-static:OCF")


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "a:b"), ("name", "a/b"), ("name", ""), ("interpreter", "/x:y"), ("interpreter", "")],
)
def test_render_refuses_bad_fields(field, value):
    entry = bf.desired_entry("arm", "qemu-arm", "/usr/bin/qemu-arm-static", "F")
    entry[field] = value
    with pytest.raises(bf.BinfmtError, match=f"invalid binfmt {field}"):
        bf.render_register_line(entry)


# ------------------------------------------------------------------------------------------ planning


def debian_current() -> dict:
    names = [f"qemu-{t}" for t in EMULATED] + ["jar", "python3.11"]
    return {n: bf.parse_entry(n, fixture("proc", n)) for n in names}


def want(target: str, flags: str = "F", prefix: str = "qemu-") -> dict:
    return bf.desired_entry(target, prefix + target, f"/usr/bin/qemu-{target}-static", flags)


def test_plan_registers_missing_entries():
    actions, replaced = bf.plan_present([want("aarch64")], {})
    assert [(a["action"], a["name"]) for a in actions] == [("register", "qemu-aarch64")]
    assert replaced == []


def test_plan_is_empty_when_converged():
    current = {"qemu-aarch64": dict(want("aarch64"), flags="F")}
    assert bf.plan_present([want("aarch64")], current) == ([], [])


def test_plan_ignores_magic_bits_outside_the_mask():
    have = want("aarch64")
    magic = bytearray(bytes.fromhex(want("aarch64")["magic"]))
    magic[7] = 0xAB  # mask byte 7 is 00
    have["magic"] = bytes(magic).hex()
    assert bf.plan_present([want("aarch64")], {"qemu-aarch64": have}) == ([], [])


def test_plan_enables_a_disabled_entry():
    current = {"qemu-arm": dict(want("arm"), enabled=False)}
    actions, replaced = bf.plan_present([want("arm")], current)
    assert [(a["action"], a["name"]) for a in actions] == [("enable", "qemu-arm")]
    assert replaced == []


def test_plan_replaces_debian_entries_with_other_interpreter_and_flags():
    current = debian_current()
    desired = [want("aarch64"), want("arm")]
    actions, replaced = bf.plan_present(desired, current)
    assert [(a["action"], a["name"]) for a in actions] == [
        ("remove", "qemu-aarch64"),
        ("register", "qemu-aarch64"),
        ("remove", "qemu-arm"),
        ("register", "qemu-arm"),
    ]
    assert [(r["old"]["interpreter"], r["old"]["flags"], r["new"]["flags"]) for r in replaced] == [
        ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "PF", "F"),
        ("/usr/libexec/qemu-binfmt/arm-binfmt-P", "PF", "F"),
    ]
    after = bf.apply_plan(current, actions)
    assert bf.plan_present(desired, after) == ([], [])
    assert after["jar"] == current["jar"]


def test_plan_only_flags_differ():
    have = dict(want("s390x"), flags="PF")
    actions, replaced = bf.plan_present([want("s390x", "PF")], {"qemu-s390x": have})
    assert actions == []
    actions, replaced = bf.plan_present([want("s390x", "OCF")], {"qemu-s390x": have})
    assert [a["action"] for a in actions] == ["remove", "register"]
    assert replaced[0]["new"]["flags"] == "OCF"


def test_plan_replaces_conflicting_entries_under_other_names_after_registering():
    current = debian_current()
    desired = [want("riscv64", prefix="fleet-")]
    actions, replaced = bf.plan_present(desired, current)
    assert [(a["action"], a["name"]) for a in actions] == [
        ("register", "fleet-riscv64"),
        ("remove", "qemu-riscv64"),
    ]
    assert replaced[0]["old"]["name"] == "qemu-riscv64"
    assert replaced[0]["new"]["name"] == "fleet-riscv64"
    # without replace_conflicting the other entry stays
    actions, replaced = bf.plan_present(desired, current, replace_conflicting=False)
    assert [(a["action"], a["name"]) for a in actions] == [("register", "fleet-riscv64")]
    assert replaced == []


def test_plan_leaves_disabled_conflicts_and_other_formats_alone():
    current = debian_current()
    current["qemu-ppc64le"]["enabled"] = False
    actions = bf.plan_present([want("ppc64le", prefix="fleet-")], current)[0]
    assert [a["name"] for a in actions] == ["fleet-ppc64le"]


def test_plan_absent():
    current = debian_current()
    actions = bf.plan_absent(["qemu-arm", "qemu-aarch64", "qemu-arm", "fleet-missing"], current)
    assert [(a["action"], a["name"]) for a in actions] == [("remove", "qemu-aarch64"), ("remove", "qemu-arm")]
    after = bf.apply_plan(current, actions)
    assert "qemu-arm" not in after
    assert "qemu-arm" in current  # apply_plan does not mutate its input


def test_emulated_targets():
    current = debian_current()
    assert bf.emulated_targets(current) == EMULATED
    assert bf.emulated_targets(current, status_enabled=False) == []
    current["qemu-arm"]["enabled"] = False
    assert "arm" not in bf.emulated_targets(current)


def test_handles_respects_offset():
    entry = bf.parse_entry("fleet-test-disabled", fixture("proc", "fleet-test-disabled"))
    assert bf.handles(entry, b"..\x00fleet")
    assert bf.handles(entry, b"..\x00fleeT")  # the mask df ignores bit 0x20 (case) of the last byte
    assert not bf.handles(entry, b"\x00fleet..")
    assert not bf.handles(entry, b"..\x00fle")  # too short


def test_describe_marks_disabled_entries():
    entry = dict(want("arm"), enabled=False)
    assert bf.describe(entry).endswith(":F  # disabled")


# ------------------------------------------------------------------------------------------ ELF probes

EXPECTED_ELF = {
    # target: (bits, byte order, e_machine, e_flags)
    "x86_64": (64, "little", 62, 0),
    "i386": (32, "little", 3, 0),
    "aarch64": (64, "little", 183, 0),
    "arm": (32, "little", 40, 0x05000000),
    "riscv64": (64, "little", 243, 0x5),
    "ppc64le": (64, "little", 21, 0x2),
    "s390x": (64, "big", 22, 0),
    "mips64el": (64, "little", 8, 0x80000007),
    "loongarch64": (64, "little", 258, 0x43),
}


@pytest.mark.parametrize("target", sorted(EXPECTED_ELF))
def test_probe_headers(target):
    data = bf.build_probe(target)
    info = parse_elf_header(data)
    bits, order, machine, flags = EXPECTED_ELF[target]
    assert (info["bits"], info["endian"], info["machine_code"], info["flags_value"]) == (bits, order, machine, flags)
    assert info["type"] == 2  # ET_EXEC
    assert info["static"] is True
    assert info["phnum"] == 1
    ehsize = 64 if bits == 64 else 52
    phsize = 56 if bits == 64 else 32
    assert info["entry"] == 0x400000 + ehsize + phsize
    assert len(data) < 200
    # the file is matched by QEMU's own magic for this target
    row = bf.QEMU_TABLE[target]
    assert bf.handles({"type": "magic", "magic": row.magic.hex(), "mask": row.mask.hex()}, data)


@pytest.mark.parametrize("target", sorted(EXPECTED_ELF))
def test_probe_exit_code_is_encoded(target):
    assert bf.build_probe(target, 42) != bf.build_probe(target, 7)
    assert len(bf.build_probe(target, 42)) == len(bf.build_probe(target, 7))


def test_probe_instruction_words():
    # spot-check encodings against the assembler's output
    assert bf.build_probe("aarch64")[-12:] == struct.pack("<III", 0xD2800540, 0xD2800BA8, 0xD4000001)
    assert bf.build_probe("riscv64")[-12:] == struct.pack("<III", 0x02A00513, 0x05D00893, 0x00000073)
    assert bf.build_probe("arm")[-12:] == struct.pack("<III", 0xE3A0002A, 0xE3A07001, 0xEF000000)
    assert bf.build_probe("ppc64le")[-12:] == struct.pack("<III", 0x3860002A, 0x38000001, 0x44000002)
    assert bf.build_probe("s390x")[-6:] == bytes.fromhex("a729002a0a01")
    assert bf.build_probe("x86_64")[-12:] == bytes.fromhex("bf2a000000b83c0000000f05")


@pytest.mark.parametrize("target", sorted(EXPECTED_ELF))
def test_argv0_probe_headers(target):
    """Same header as the exit probe (what binfmt_misc matches), other instructions; run for real in
    tests/integration/test_binfmt.py under each emulator, with and without the argv[0] QEMU is handed."""
    data = bf.build_argv0_probe(target)
    info = parse_elf_header(data)
    assert (info["bits"], info["endian"], info["machine_code"], info["flags_value"]) == EXPECTED_ELF[target]
    assert info["static"] is True and info["type"] == 2
    assert data[:16] == bf.build_probe(target)[:16]  # the same ELF identification bytes
    assert data != bf.build_probe(target, bf.ARGV0_PRESERVED)
    row = bf.QEMU_TABLE[target]
    assert bf.handles({"type": "magic", "magic": row.magic.hex(), "mask": row.mask.hex()}, data)


def test_argv0_probe_codes():
    assert (bf.ARGV0_PRESERVED, bf.ARGV0_LOST) == (65, 47)
    assert bf.ARGV0_PROBE_NAME[0] == "A"
    # ldr x1, [sp, #8]; ldrb w0, [x1]; movz x8, #93; svc #0
    assert bf.build_argv0_probe("aarch64")[-16:] == struct.pack("<IIII", 0xF94007E1, 0x39400020, 0xD2800BA8, 0xD4000001)


@pytest.mark.parametrize(
    ("rc", "flags", "words"),
    [
        (65, "F", None),
        (65, "PCF", None),
        (47, "F", ["without the P flag (flags F)", "busybox", "add P to flags", "verify: false"]),
        (47, "CF", ["without the P flag (flags OCF)"]),
        (47, "PF", ["has the P flag", "5.12", "QEMU 6.0"]),
        (3, "PCF", ["exited 3, expected 65"]),
        (126, "F", ["exited 126"]),
    ],
)
def test_argv0_probe_problem(rc, flags, words):
    problem = bf.argv0_probe_problem(rc, flags)
    if words is None:
        assert problem == ""
    for word in words or []:
        assert word in problem, (word, problem)


def test_probe_errors():
    with pytest.raises(bf.BinfmtError, match="no ELF probe for QEMU target 'sparc'"):
        bf.build_probe("sparc")
    with pytest.raises(bf.BinfmtError, match=r"0\.\.127"):
        bf.build_probe("arm", 300)


# ------------------------------------------------------------------------------------------ host helpers


@pytest.mark.parametrize(
    ("os_release", "words"),
    [
        ('ID=debian\nVERSION_ID="12"\n', ["qemu-user-static", "apt-get"]),
        ("ID=ubuntu\nID_LIKE=debian\n", ["apt-get install qemu-user-static"]),
        ('ID=fedora\nVERSION_ID="40"\n', ["qemu-user-static-aarch64", "dnf install"]),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', ["dnf install qemu-user-static-aarch64"]),
        ("ID=arch\n", ["qemu-user-static (Debian/Ubuntu)", "qemu-user-static-aarch64 (Fedora)"]),
    ],
)
def test_package_hint(os_release, words):
    hint = bf.package_hint("aarch64", os_release)
    for word in words:
        assert word in hint


def test_fedora_package_names():
    assert (
        bf.package_hint("riscv64", "ID=fedora")
        == "the package qemu-user-static-riscv (dnf install qemu-user-static-riscv)"
    )
    assert "qemu-user-static-ppc " in bf.package_hint("ppc64le", "ID=fedora")


def test_find_emulator_finds_static_and_refuses_dynamic(tmp_path):
    static = tmp_path / "qemu-aarch64-static"
    static.write_bytes(bf.build_probe("aarch64"))
    static.chmod(0o755)
    assert bf.find_emulator("aarch64", [str(tmp_path)]) == str(static)
    dynamic = tmp_path / "qemu-riscv64"
    dynamic.write_bytes(Path("/bin/sh").read_bytes())
    dynamic.chmod(0o755)
    with pytest.raises(bf.BinfmtError, match="is dynamically linked"):
        bf.find_emulator("riscv64", [str(tmp_path)])
    with pytest.raises(bf.BinfmtError, match=r"no static QEMU emulator qemu-s390x-static in .*: install"):
        bf.find_emulator("s390x", [str(tmp_path)])


def test_binfmt_misc_reads_a_directory(tmp_path):
    for name in ("qemu-aarch64", "jar", "fleet-test-disabled", "status"):
        (tmp_path / name).write_text(fixture("proc", name))
    (tmp_path / "register").write_text("")
    kernel = bf.BinfmtMisc(run_command=None, root=str(tmp_path))
    assert kernel.mounted()
    assert kernel.status_enabled()
    entries = kernel.entries()
    assert sorted(entries) == ["fleet-test-disabled", "jar", "qemu-aarch64"]
    assert entries["qemu-aarch64"]["flags"] == "PF"
    kernel.register(want("arm"))
    assert (tmp_path / "register").read_text() == bf.render_register_line(want("arm"))
    kernel.remove("jar")
    assert (tmp_path / "jar").read_text() == "-1"
    kernel.remove("missing")  # already gone is fine
    os.unlink(tmp_path / "register")
    assert not kernel.mounted()
    assert kernel.entries() == {}


def test_persisted_files(tmp_path):
    for name in ("qemu-arm.conf", "qemu-aarch64.conf", "other.conf", "qemu-x.txt"):
        (tmp_path / name).write_text("")
    assert [Path(p).name for p in bf.persisted_files(str(tmp_path), "qemu-")] == ["qemu-aarch64.conf", "qemu-arm.conf"]


# ---------------------------------------------------------------------------------------------------
# what a device can run: native platforms and binfmt_misc emulators (entries captured from a Debian host)


ARM32 = ["linux/arm/v7", "linux/arm/v6"]


def captured_binfmt(*targets: str) -> dict:
    return {f"qemu-{t}": bf.parse_entry(f"qemu-{t}", fixture("proc", f"qemu-{t}")) for t in targets}


@pytest.mark.parametrize(
    ("device", "targets", "enabled", "native", "emulated"),
    [
        ("linux/amd64", ("aarch64", "arm"), True, ["linux/amd64", "linux/386"], ["linux/arm64", *ARM32]),
        ("linux/amd64", ("aarch64", "arm"), False, ["linux/amd64", "linux/386"], []),
        ("linux/arm64", (), True, ["linux/arm64"], []),
        ("linux/arm/v7", ("ppc64le",), True, ["linux/arm/v7"], ["linux/ppc64le"]),
    ],
)  # fmt: skip
def test_runnable_platforms(device, targets, enabled, native, emulated):
    assert bf.runnable_platforms(device, captured_binfmt(*targets), enabled) == (native, emulated)


@pytest.mark.parametrize(
    ("machine", "native"),
    [
        ("aarch64", ["linux/arm/v7", "linux/arm64"]),  # a Pi under a 32-bit OS with the 64-bit kernel
        ("armv7l", ["linux/arm/v7"]),
        ("", ["linux/arm/v7"]),
        ("sparc64", ["linux/arm/v7"]),  # a kernel the platform table does not know adds nothing
    ],
)
def test_the_kernel_runs_its_own_platform_under_another_userland(machine, native):
    assert bf.runnable_platforms("linux/arm/v7", {}, True, machine) == (native, [])


@pytest.mark.parametrize(
    ("requested", "device", "runnable", "expected"),
    [
        ("linux/mips64le", "linux/amd64", ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7"], False),
        ("linux/amd64/v3", "linux/amd64", ["linux/amd64", "linux/386"], True),  # variants are the engine's business
        ("linux/amd64", "linux/arm64", ["linux/arm64"], False),  # the issue's ARM guest without an emulator
        ("linux/arm/v7", "linux/arm64", ["linux/arm64"], True),  # most arm64 CPUs run 32-bit ARM natively
        ("linux/arm64", "linux/arm/v7", ["linux/arm/v7"], False),
        ("linux/arm/v6", "linux/amd64", ["linux/amd64", "linux/arm/v7", "linux/arm/v6"], True),
    ],
)
def test_can_run(requested, device, runnable, expected):
    assert bf.can_run(requested, device, runnable) is expected


def test_supported_platforms_shape():
    entries = {
        "qemu-aarch64": bf.desired_entry("aarch64", "qemu-aarch64", "/x", "F"),
        "other-arm": bf.desired_entry("arm", "other-arm", "/y", "F"),
    }
    assert bf.supported_platforms(parse_platform("amd64"), entries, True) == [
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
    ]
    assert bf.supported_platforms(parse_platform("amd64"), entries, False) == ["linux/amd64", "linux/386"]


def test_mount_runs_mount_and_names_the_kernel_option_when_binfmt_misc_is_missing(tmp_path, monkeypatch):
    calls = []

    def run_command(argv):
        calls.append(argv)
        if argv[0] == "mount":
            (tmp_path / "register").write_text("")
        return 0, "", ""

    kernel = bf.BinfmtMisc(run_command, root=str(tmp_path))
    monkeypatch.setattr(bf.BinfmtMisc, "in_kernel", lambda self: True)
    kernel.mount()
    assert calls == [["mount", "-t", "binfmt_misc", "binfmt_misc", str(tmp_path)]]
    assert kernel.mounted()

    calls.clear()
    monkeypatch.setattr(bf.BinfmtMisc, "in_kernel", lambda self: False)
    with pytest.raises(bf.BinfmtError, match="CONFIG_BINFMT_MISC"):
        kernel.mount()
    assert calls == [["modprobe", "binfmt_misc"]]  # it tried to load the module first
