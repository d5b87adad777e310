"""Unit tests for the collection's single platform-string module."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _platform as pf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    Platform,
    PlatformError,
    parse_platform,
)


@pytest.mark.parametrize(
    ("spec", "oci"),
    [
        # arm64 in every spelling; v8 is the default and is omitted like containerd's Normalize
        ("arm64", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        ("linux/arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("ARM64", "linux/arm64"),
        ("  linux/arm64  ", "linux/arm64"),
        # 32-bit ARM: plain arm means v7
        ("arm", "linux/arm/v7"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("armhf", "linux/arm/v7"),
        ("armv7l", "linux/arm/v7"),
        ("armv7hl", "linux/arm/v7"),
        ("armv8l", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("armhf/v7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("arm/v6", "linux/arm/v6"),
        ("armv6l", "linux/arm/v6"),
        ("armel", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("armv5tel", "linux/arm/v5"),
        # x86
        ("x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("386", "linux/386"),
        ("i386", "linux/386"),
        ("i686", "linux/386"),
        ("linux/386", "linux/386"),
        # the others
        ("riscv64", "linux/riscv64"),
        ("linux/riscv64", "linux/riscv64"),
        ("ppc64le", "linux/ppc64le"),
        ("ppc64el", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("mips64le", "linux/mips64le"),
        ("mips64el", "linux/mips64le"),
        ("loong64", "linux/loong64"),
        ("loongarch64", "linux/loong64"),
        # other operating systems (manifest lists carry them)
        ("windows/amd64", "windows/amd64"),
        ("darwin/arm64", "darwin/arm64"),
    ],
)
def test_parse_normalises_every_spelling(spec, oci):
    plat = parse_platform(spec)
    assert plat.oci == oci
    assert str(plat) == oci
    assert pf.normalize_platform(spec) == oci
    assert parse_platform(plat.oci) == plat  # normalised output parses back to itself


@pytest.mark.parametrize(
    ("spec", "machine", "dpkg", "qemu"),
    [
        ("linux/amd64", "x86_64", "amd64", "x86_64"),
        ("linux/amd64/v3", "x86_64", "amd64", "x86_64"),
        ("linux/386", "i686", "i386", "i386"),
        ("linux/arm64", "aarch64", "arm64", "aarch64"),
        ("linux/arm/v7", "armv7l", "armhf", "arm"),
        ("linux/arm/v6", "armv6l", "armel", "arm"),
        ("linux/arm/v5", "armv5tel", "armel", "arm"),
        ("linux/riscv64", "riscv64", "riscv64", "riscv64"),
        ("linux/ppc64le", "ppc64le", "ppc64el", "ppc64le"),
        ("linux/s390x", "s390x", "s390x", "s390x"),
        ("linux/mips64le", "mips64", "mips64el", "mips64el"),
        ("linux/loong64", "loongarch64", "loong64", "loongarch64"),
    ],
)
def test_name_mappings(spec, machine, dpkg, qemu):
    plat = parse_platform(spec)
    assert plat.machine == machine
    assert plat.dpkg_arch == dpkg
    assert plat.qemu_target == qemu
    assert pf.platform_from_qemu_target(qemu).architecture == plat.architecture


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("arm64/v7", ["arm64 has no variant 'v7'", "linux/arm/v7"]),
        ("linux/arm64/v7", ["arm64 has no variant 'v7'", "linux/arm/v7"]),
        ("linux/arm/v8", ["arm has no variant 'v8'", "linux/arm64"]),
        ("armv7", ["not an architecture name", "linux/arm/v7"]),
        ("linux/armv7", ["not an architecture name", "linux/arm/v7"]),
        ("linux/armv6", ["linux/arm/v6"]),
        ("armv8", ["linux/arm64"]),
        ("arm64v8", ["linux/arm64"]),
        ("armhf/v6", ["already means linux/arm/v7", "linux/arm/v6"]),
        ("linux/amd64/v9", ["amd64 has no variant 'v9'", "v2"]),
        ("sparc64", ["unknown architecture 'sparc64'", "linux/arm64", "linux/arm/v7", "aarch64"]),
        ("plan9/arm64", ["unknown operating system 'plan9'", "linux"]),
        ("foo/arm64/v8", ["unknown operating system 'foo'"]),
        ("linux", ["an architecture is missing"]),
        ("linux/arm/v7/extra", ["expected os/architecture[/variant]"]),
        ("linux//arm", ["expected os/architecture[/variant]"]),
        ("", ["expected a string"]),
        ("   ", ["expected a string"]),
    ],
)
def test_invalid_spellings_say_what_to_write(spec, words):
    with pytest.raises(PlatformError) as err:
        parse_platform(spec)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("value", [None, 42, ["linux/arm64"]])
def test_non_strings_are_refused(value):
    with pytest.raises(PlatformError, match="expected a string"):
        parse_platform(value)


def test_platform_error_is_a_value_error():
    assert issubclass(PlatformError, ValueError)


def test_parse_accepts_a_platform():
    plat = parse_platform("arm64")
    assert parse_platform(plat) is plat


def test_default_os():
    assert parse_platform("amd64", default_os="windows").oci == "windows/amd64"


def test_known_platforms_list():
    known = pf.known_platforms()
    assert known == [
        "linux/amd64",
        "linux/amd64/v2",
        "linux/amd64/v3",
        "linux/amd64/v4",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
        "linux/mips64le",
        "linux/loong64",
    ]
    for oci in known:
        assert parse_platform(oci).oci == oci


def test_known_architectures_and_spellings():
    assert pf.known_architectures() == [
        "amd64",
        "386",
        "arm64",
        "arm",
        "riscv64",
        "ppc64le",
        "s390x",
        "mips64le",
        "loong64",
    ]
    spellings = pf.known_spellings()
    assert spellings == sorted(spellings)
    for name in ("aarch64", "armhf", "armel", "x86_64", "i686", "ppc64el", "mips64el", "loongarch64"):
        assert name in spellings
        parse_platform(name)


@pytest.mark.parametrize(
    ("data", "oci"),
    [
        ({"os": "linux", "architecture": "arm64", "variant": "v8"}, "linux/arm64"),
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "linux/arm/v7"),
        ({"os": "linux", "architecture": "arm"}, "linux/arm/v7"),
        ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
        ({"architecture": "s390x"}, "linux/s390x"),
        ({"os": "windows", "architecture": "amd64"}, "windows/amd64"),
    ],
)
def test_from_dict_and_back(data, oci):
    plat = pf.platform_from_dict(data)
    assert plat.oci == oci
    assert pf.platform_from_dict(plat.to_dict()) == plat


def test_to_dict_omits_empty_variant():
    assert parse_platform("arm64").to_dict() == {"os": "linux", "architecture": "arm64"}
    assert parse_platform("armhf").to_dict() == {"os": "linux", "architecture": "arm", "variant": "v7"}


def test_effective_variant():
    assert parse_platform("arm64").effective_variant == "v8"
    assert parse_platform("arm").effective_variant == "v7"
    assert parse_platform("amd64").effective_variant == "v1"
    assert parse_platform("riscv64").effective_variant == ""


@pytest.mark.parametrize(
    ("machine", "byteorder", "oci"),
    [
        ("x86_64", "little", "linux/amd64"),
        ("aarch64", "little", "linux/arm64"),
        ("armv7l", "little", "linux/arm/v7"),
        ("armv6l", "little", "linux/arm/v6"),
        ("i686", "little", "linux/386"),
        ("riscv64", "little", "linux/riscv64"),
        ("ppc64le", "little", "linux/ppc64le"),
        ("s390x", "big", "linux/s390x"),
        ("mips64", "little", "linux/mips64le"),
        ("loongarch64", "little", "linux/loong64"),
    ],
)
def test_platform_from_machine(machine, byteorder, oci):
    assert pf.platform_from_machine(machine, byteorder).oci == oci


def test_big_endian_mips64_is_refused():
    with pytest.raises(PlatformError, match="big-endian mips64"):
        pf.platform_from_machine("mips64", "big")


def test_unknown_qemu_target():
    with pytest.raises(PlatformError, match="unknown QEMU target 'sparc64'; known: x86_64, i386, aarch64"):
        pf.platform_from_qemu_target("sparc64")


def test_host_platform_is_this_machine():
    assert pf.host_platform() == pf.platform_from_machine(os.uname().machine)


@pytest.mark.parametrize(
    ("host", "native"),
    [
        ("linux/amd64", ["linux/amd64", "linux/386"]),
        ("linux/amd64/v3", ["linux/amd64", "linux/386"]),
        ("linux/arm64", ["linux/arm64"]),
        ("linux/arm/v7", ["linux/arm/v7"]),
        ("linux/riscv64", ["linux/riscv64"]),
    ],
)
def test_native_platforms(host, native):
    assert [p.oci for p in pf.native_platforms(parse_platform(host))] == native


def test_emulated_platforms():
    assert [p.oci for p in pf.emulated_platforms("arm")] == ["linux/arm/v7", "linux/arm/v6"]
    assert [p.oci for p in pf.emulated_platforms("aarch64")] == ["linux/arm64"]
    assert [p.oci for p in pf.emulated_platforms("mips64el")] == ["linux/mips64le"]


def test_platform_is_hashable_and_frozen():
    assert len({parse_platform("aarch64"), parse_platform("linux/arm64/v8"), parse_platform("arm64")}) == 1
    with pytest.raises(AttributeError):
        parse_platform("arm64").architecture = "arm"  # type: ignore[misc]
    assert Platform("linux", "arm64") == parse_platform("arm64")


# ------------------------------------------------------------------------- the table's other columns


@pytest.mark.parametrize(
    ("machine", "bits"),
    [
        ("aarch64", 64),
        ("armv8l", 64),  # linux32 on a 64-bit kernel
        ("armv7l", 32),
        ("armv6l", 32),
        ("x86_64", 64),
        ("i686", 32),
        ("mips64", 64),
        ("riscv32", 32),
        ("sparc64", None),
        ("", None),
    ],
)
def test_machine_bits(machine, bits):
    assert pf.machine_bits(machine) == bits


@pytest.mark.parametrize(
    ("platform", "host", "machines"),
    [
        ("linux/amd64", "linux/amd64", ["x86_64"]),
        ("linux/386", "linux/amd64", ["i686", "i386", "x86_64"]),  # native 32-bit: the 64-bit kernel's machine
        ("linux/arm64", "linux/amd64", ["aarch64"]),
        ("linux/arm/v7", "linux/amd64", ["armv7l"]),
        ("linux/arm/v6", "linux/amd64", ["armv6l", "armv7l"]),  # qemu-arm is an ARMv7 CPU
        ("linux/arm/v5", "linux/amd64", ["armv5tel", "armv5tejl", "armv7l"]),
        ("linux/arm/v6", "linux/arm/v6", ["armv6l"]),  # a Pi Zero runs it natively
        ("linux/mips64le", "linux/amd64", ["mips64"]),
        ("linux/loong64", "linux/amd64", ["loongarch64"]),
    ],
)
def test_container_machines(platform, host, machines):
    """What the build host's smoke test accepts from ``uname -m`` in a container of each platform."""
    assert pf.container_machines(platform, host) == machines


def test_elf_identity_and_the_parser_agree_for_every_architecture():
    """One table: the ELF identity written for a platform reads back as that platform."""
    for arch in pf.known_architectures():
        plat = pf.parse_platform(arch)
        bits, order, machine = pf.elf_identity(plat)
        ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "<" else 2, 1, 0]) + b"\x00" * 8
        if bits == 64:
            header = ident + struct.pack(order + "HHIQQQIHHHHHH", 2, machine, 1, 0, 0, 0, 0x400, 64, 56, 0, 0, 0, 0)
        else:
            header = ident + struct.pack(order + "HHIIIIIHHHHHH", 2, machine, 1, 0, 0, 0, 0x400, 52, 32, 0, 0, 0, 0)
        elf = pf.parse_elf_header(header)
        assert elf["bits"] == plat.bits == bits
        expected = "linux/arm/v7" if arch == "arm" else plat.oci  # hard-float ARM (e_flags 0x400): armhf
        assert pf.platform_from_elf(elf).oci == expected, arch
        assert elf["static"] is True  # no program header


@pytest.mark.parametrize(
    "data", [b"", b"#!/bin/sh\n" + b" " * 60, b"\x7fELF" + b"\x00" * 10, b"\x7fELF\x03\x01" + b"\x00" * 60]
)
def test_not_an_elf_header(data):
    assert pf.parse_elf_header(data) is None
    assert pf.platform_from_elf(None) is None


def test_a_dynamic_binary_of_this_host():
    elf = pf.parse_elf_header(Path("/bin/sh").read_bytes()[:65536])
    assert elf["static"] is False
    assert pf.platform_from_elf(elf) == pf.host_platform()
    assert pf.parse_elf_header(Path("/bin/sh").read_bytes()[:64])["static"] is None  # program headers not read
