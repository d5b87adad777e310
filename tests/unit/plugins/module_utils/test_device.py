"""Unit tests for _device: real /proc/cpuinfo, uname, device-tree and ELF texts of real boards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _device as dev
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "devices"
ELF = FIXTURES / "elf"


class FixtureReader:
    """The DeviceReader interface over a fixture folder; a missing file reads as not captured."""

    def __init__(self, board: str, **override):
        self.root = FIXTURES / board
        self.override = override

    def _text(self, name: str) -> str:
        if name in self.override:
            return self.override[name]
        path = self.root / name
        return path.read_text() if path.is_file() else ""

    def machine(self):
        return self._text("uname_m")

    def cpuinfo(self):
        return self._text("cpuinfo")

    def meminfo(self):
        return self._text("meminfo")

    def device_tree_model(self):
        return self._text("model")

    def dpkg_arch(self):
        return self._text("dpkg_arch")

    def elf_header(self):
        hex_text = self._text("elf_sh.hex")
        return ("/usr/bin/dash", bytes.fromhex(hex_text.strip())) if hex_text else ("", b"")

    def docker_version(self):
        if "docker_version.json" in self.override:
            return self.override["docker_version.json"]
        path = self.root / "docker_version.json"
        return path.read_text() if path.is_file() else None


def elf_hex(name: str) -> str:
    return (ELF / f"{name}.hex").read_text()


# board, platform, ARM level, core, board model, cores
BOARDS = [
    ("pi-zero-w-raspbian", "linux/arm/v6", 6, "ARM1176", "Raspberry Pi Zero W Rev 1.1", 1),
    ("pi-1-b-plus-raspbian", "linux/arm/v6", 6, "ARM1176", "Raspberry Pi Model B Plus Rev 1.2", 1),
    ("pi-2-b-raspbian", "linux/arm/v7", 7, "Cortex-A7", "Raspberry Pi 2 Model B Rev 1.1", 1),
    ("pi-3-b-raspbian", "linux/arm/v7", 8, "Cortex-A53", "Raspberry Pi 3 Model B Rev 1.2", 4),
    ("pi-3-b-arm64", "linux/arm64", 8, "Cortex-A53", "Raspberry Pi 3 Model B Rev 1.2", 4),
    ("pi-4-b-raspbian", "linux/arm/v7", 8, "Cortex-A72", "Raspberry Pi 4 Model B Rev 1.2", 1),
    ("pi-4-b-kernel64-armhf", "linux/arm/v7", 8, "Cortex-A72", "Raspberry Pi 4 Model B Rev 1.5", 4),
    ("pi-5", "linux/arm64", 8, "Cortex-A76", "Raspberry Pi 5 Model B Rev 1.0", 4),
    ("rock-5b", "linux/arm64", 8, "Cortex-A55", "", 8),
    ("x86_64-build-host", "linux/amd64", None, "", "", None),
]


@pytest.mark.parametrize("case", BOARDS, ids=[b[0] for b in BOARDS])
def test_real_boards(case):
    board, platform, level, core, model, cores = case
    facts = dev.gather(FixtureReader(board))
    assert facts["platform"] == platform
    assert facts["platform_reason"].endswith(f": {platform}")
    assert facts["cpu"]["architecture_level"] == level
    assert facts["cpu"]["core"] == core
    assert facts["board"]["model"] == model
    if cores is not None:
        assert facts["cpu"]["cores"] == cores
    assert "serial" not in json.dumps(facts).lower()


def test_x86_64_build_host_facts():
    facts = dev.gather(FixtureReader("x86_64-build-host"))
    assert facts["machine"] == "x86_64"
    assert facts["kernel_bits"] == 64
    assert facts["userland_arch"] == "amd64"
    assert facts["userland_bits"] == 64
    assert facts["elf"]["machine"] == "x86-64"
    assert facts["elf"]["path"] == "/usr/bin/dash"
    assert facts["memory_mb"] > 0
    assert facts["cpu"]["model_name"] == "AMD EPYC"
    assert "sse2" in facts["cpu"]["features"]
    assert facts["board"] == {"model": "", "model_source": "", "revision": "", "hardware": ""}
    assert facts["engine"] == {
        "name": "docker",
        "version": "20.10.24+dfsg1",
        "api_version": "1.41",
        "arch": "amd64",
        "os": "linux",
        "client_version": "28.2.2",
        "reachable": True,
    }
    assert facts["platform_reason"] == "64-bit kernel (x86_64) with a 64-bit amd64 userland: linux/amd64"


def test_pi_zero_is_v6_with_armhf_userland_and_cpu_architecture_7():
    """The ARM1176 reports "CPU architecture: 7"; Raspberry Pi OS calls its ARMv6 userland armhf."""
    facts = dev.gather(FixtureReader("pi-zero-w-raspbian", **{"elf_sh.hex": elf_hex("bookworm-armhf-dash")}))
    assert facts["cpu"]["architecture"] == "7"
    assert facts["cpu"]["model_name"] == "ARMv6-compatible processor rev 7 (v6l)"
    assert facts["cpu"]["part"] == "0xb76"
    assert facts["cpu"]["features"] == ["half", "thumb", "fastmult", "vfp", "edsp", "java", "tls"]
    assert facts["userland_arch"] == "armhf"
    assert facts["platform"] == "linux/arm/v6"
    assert "never a v7 image" in facts["platform_reason"]
    assert facts["board"]["model_source"] == "/proc/cpuinfo Model"
    assert facts["board"]["revision"] == "9000c1"
    assert facts["board"]["hardware"] == "BCM2835"


def test_device_tree_model_wins_and_loses_its_nul():
    facts = dev.gather(FixtureReader("pi-1-b-plus-raspbian"))
    assert facts["board"]["model"] == "Raspberry Pi Model B Plus Rev 1.2"
    assert facts["board"]["model_source"] == "/proc/device-tree/model"
    assert facts["board"]["revision"] == "0010"


def test_64bit_kernel_with_32bit_userland_is_arm_v7():
    """Pi 4 with kernel8.img and 32-bit Raspberry Pi OS: uname aarch64, dpkg armhf, /bin/sh ELF32."""
    reader = FixtureReader("pi-4-b-kernel64-armhf", **{"elf_sh.hex": elf_hex("bookworm-armhf-dash")})
    facts = dev.gather(reader)
    assert facts["machine"] == "aarch64"
    assert facts["kernel_bits"] == 64
    assert facts["userland_bits"] == 32
    assert facts["elf"]["float_abi"] == "hard"
    assert facts["cpu"]["model_name"] == ""
    assert facts["cpu"]["features"] == ["fp", "asimd", "evtstrm", "crc32", "cpuid"]
    assert facts["platform"] == "linux/arm/v7"
    assert facts["platform_reason"] == (
        "64-bit kernel (aarch64) with a 32-bit armhf userland; ARMv8 CPU: 32-bit ARM images stop at v7: linux/arm/v7"
    )


def test_64bit_kernel_with_32bit_userland_from_elf_alone():
    reader = FixtureReader("pi-4-b-kernel64-armhf", dpkg_arch="", **{"elf_sh.hex": elf_hex("bookworm-armhf-dash")})
    facts = dev.gather(reader)
    assert facts["userland_arch"] == "armhf"
    assert facts["platform"] == "linux/arm/v7"


def test_64bit_userland_on_pi_4_is_arm64():
    reader = FixtureReader(
        "pi-4-b-kernel64-armhf", dpkg_arch="arm64\n", **{"elf_sh.hex": elf_hex("bookworm-arm64-dash")}
    )
    facts = dev.gather(reader)
    assert facts["userland_bits"] == 64
    assert facts["platform"] == "linux/arm64"


def test_armv8l_personality_is_arm_v7():
    """A 32-bit process under linux32 on a 64-bit kernel: uname -m armv8l, compat cpuinfo."""
    cpuinfo = (
        "Processor\t: AArch64 Processor rev 3 (aarch64)\nprocessor\t: 0\n"
        "Features\t: fp asimd aes pmull sha1 sha2 crc32 wp half thumb fastmult vfp edsp neon vfpv3 tlsi vfpv4\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd03\nCPU revision\t: 3\n"
    )
    facts = dev.gather(FixtureReader("pi-3-b-arm64", uname_m="armv8l\n", cpuinfo=cpuinfo))
    assert facts["kernel_bits"] == 64
    assert facts["platform"] == "linux/arm/v7"


def test_armv6l_kernel_caps_a_bare_cpu_architecture_7():
    """No part number and no model name: the armv6l kernel says ARMv6 although cpuinfo says 7."""
    cpu = dev.cpu_facts("processor\t: 0\nCPU architecture: 7\n", "armv6l")
    assert cpu["architecture_level"] == 6
    assert dev.decide_platform("armv6l", None, "armhf", cpu)[0].oci == "linux/arm/v6"


def test_old_kernel_processor_line_is_the_model_name():
    cpu = dev.cpu_facts("Processor\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n", "")
    assert cpu["model_name"] == "ARMv6-compatible processor rev 7 (v6l)"
    assert cpu["architecture_level"] == 6


@pytest.mark.parametrize(
    "case",
    [
        ("bookworm-armhf-dash", 32, "ARM", "hard", "linux/arm/v7", "armhf"),
        ("bookworm-arm64-dash", 64, "AArch64", "", "linux/arm64", "arm64"),
        ("bookworm-amd64-dash", 64, "x86-64", "", "linux/amd64", "amd64"),
        ("busybox-1.35-armel", 32, "ARM", "soft", "linux/arm/v6", "armel"),
        ("busybox-1.35-armhf", 32, "ARM", "hard", "linux/arm/v7", "armhf"),
    ],
)
def test_real_elf_headers(case):
    name, bits, machine, float_abi, platform, dpkg = case
    elf = dev.parse_elf_header(bytes.fromhex(elf_hex(name).strip()))
    assert elf["bits"] == bits
    assert elf["machine"] == machine
    assert elf["endian"] == "little"
    assert elf["float_abi"] == float_abi
    assert dev.platform_from_elf(elf).oci == platform
    assert dev.dpkg_name_from_elf(elf) == dpkg
    if machine == "ARM":
        assert elf["eabi"] == 5


def test_soft_float_userland_on_armv7_cpu_is_arm_v7():
    elf = dev.parse_elf_header(bytes.fromhex(elf_hex("busybox-1.35-armel").strip()))
    cpu = dev.cpu_facts((FIXTURES / "pi-2-b-raspbian" / "cpuinfo").read_text(), "armv7l")
    plat, reason = dev.decide_platform("armv7l", elf, "", cpu)
    assert plat.oci == "linux/arm/v7"
    assert "32-bit armel userland" in reason


def test_armel_without_cpuinfo_falls_back_to_the_name():
    plat, reason = dev.decide_platform("", None, "armel", {"architecture_level": None})
    assert plat.oci == "linux/arm/v6"
    assert "CPU level unknown" in reason


def test_engine_architecture_wins_over_the_userland():
    engine = {"reachable": True, "arch": "arm64"}
    cpu = dev.cpu_facts((FIXTURES / "pi-4-b-kernel64-armhf" / "cpuinfo").read_text(), "aarch64")
    plat, reason = dev.decide_platform("aarch64", None, "armhf", cpu, engine)
    assert plat.oci == "linux/arm64"
    assert "arm64 container engine" in reason


def test_unreachable_engine_does_not_decide():
    engine = {"reachable": False, "arch": "arm64"}
    cpu = dev.cpu_facts((FIXTURES / "pi-4-b-kernel64-armhf" / "cpuinfo").read_text(), "aarch64")
    assert dev.decide_platform("aarch64", None, "armhf", cpu, engine)[0].oci == "linux/arm/v7"


def test_i386_userland_on_x86_64_kernel():
    assert dev.decide_platform("x86_64", None, "i386", {"architecture_level": None})[0].oci == "linux/386"


def test_nothing_known_raises():
    with pytest.raises(PlatformError, match="cannot tell the platform"):
        dev.decide_platform("", None, "", {"architecture_level": None})


def test_unknown_machine_raises():
    with pytest.raises(PlatformError):
        dev.decide_platform("sparc64", None, "", {"architecture_level": None})


def test_docker_version_unreachable_daemon():
    text = json.dumps({"Client": {"Version": "24.0.5", "Arch": "arm", "Os": "linux"}, "Server": None})
    assert dev.parse_docker_version(text) == {
        "name": "docker",
        "version": "",
        "api_version": "",
        "arch": "arm",
        "os": "linux",
        "client_version": "24.0.5",
        "reachable": False,
    }


@pytest.mark.parametrize("text", ["", "Cannot connect to the Docker daemon", "[1, 2]"])
def test_docker_version_garbage(text):
    assert dev.parse_docker_version(text) is None


def test_docker_installed_but_silent_is_reported():
    facts = dev.gather(FixtureReader("x86_64-build-host", **{"docker_version.json": ""}))
    assert facts["engine"]["name"] == "docker"
    assert facts["engine"]["reachable"] is False
    assert facts["platform"] == "linux/amd64"


def test_no_docker_means_no_engine():
    assert dev.gather(FixtureReader("pi-5"))["engine"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [((FIXTURES / "pi-5" / "meminfo").read_text(), 8058), ("MemTotal:  439592 kB\n", 429), ("", None), ("x", None)],
)
def test_meminfo(text, expected):
    assert dev.parse_meminfo(text) == expected


def test_dpkg_output():
    assert dev.parse_dpkg_arch("armhf\n") == "armhf"
    assert dev.parse_dpkg_arch("") == ""


class FakeModule:
    def __init__(self, bins, outputs):
        self.bins = bins
        self.outputs = outputs
        self.calls = []

    def get_bin_path(self, name):
        return self.bins.get(name)

    def run_command(self, argv, environ_update=None):
        self.calls.append(argv)
        return self.outputs[argv[-1] if argv[-1] != "{{json .}}" else "docker"]


def test_reader_runs_at_most_two_short_commands():
    module = FakeModule(
        {"dpkg": "/usr/bin/dpkg", "docker": "/usr/bin/docker", "timeout": "/usr/bin/timeout"},
        {"--print-architecture": (0, "armhf\n", ""), "docker": (1, '{"Client": {"Arch": "arm"}}', "no daemon")},
    )
    reader = dev.DeviceReader(module)
    assert reader.dpkg_arch() == "armhf\n"
    assert reader.docker_version() == '{"Client": {"Arch": "arm"}}'
    assert module.calls == [
        ["/usr/bin/timeout", "10", "/usr/bin/dpkg", "--print-architecture"],
        ["/usr/bin/timeout", "10", "/usr/bin/docker", "version", "--format", "{{json .}}"],
    ]


def test_reader_without_tools():
    module = FakeModule({}, {})
    reader = dev.DeviceReader(module)
    assert reader.dpkg_arch() == ""
    assert reader.docker_version() is None
    assert module.calls == []


def test_reader_reads_this_machine():
    reader = dev.DeviceReader(FakeModule({}, {}))
    path, data = reader.elf_header()
    assert data[:4] == b"\x7fELF"
    assert path.startswith("/")
    assert "processor" in reader.cpuinfo()
    assert "MemTotal" in reader.meminfo()
    assert reader.read_text("/nonexistent/fleet-multiarch") == ""


def _engine(arch: str, reachable: bool = True) -> dict:
    """What parse_docker_version makes of `docker version --format '{{json .}}'` on such an engine."""
    server = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "Arch": arch, "Os": "linux"} if reachable else None
    return dev.parse_docker_version(
        json.dumps({"Client": {"Version": "20.10.24+dfsg1", "Arch": arch}, "Server": server})
    )


@pytest.mark.parametrize(
    ("board", "engine_arch", "reachable", "mismatch"),
    [
        ("pi-4-b-kernel64-armhf", "arm", True, ""),  # 64-bit kernel, 32-bit OS, the armhf engine: right
        ("pi-4-b-kernel64-armhf", "arm64", True, "it is arm64, the platform is linux/arm/v7 and the userland armhf"),
        ("pi-4-b-raspbian", "arm", True, ""),
        ("x86_64-build-host", "amd64", True, ""),
        ("pi-2-b-raspbian", "arm", False, "no engine answers"),
    ],
)
def test_engine_mismatch_on_real_boards(board, engine_arch, reachable, mismatch):
    """The device role's check, from device_facts: the engine must run the userland's architecture."""
    reader = FixtureReader(board, **{"docker_version.json": json.dumps({})})
    facts = dev.gather(reader)
    plat = dev.parse_platform(facts["platform"])
    assert dev.engine_mismatch(_engine(engine_arch, reachable), plat, facts["userland_arch"]) == mismatch
    assert dev.engine_mismatch(None, plat, facts["userland_arch"]) == ""  # no engine installed: another task's concern
