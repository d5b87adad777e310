# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""What a device is and which OCI platform it must pull, from texts the kernel and tools print.

Everything here except :class:`DeviceReader` is a pure function of captured text or bytes
(``/proc/cpuinfo``, ``uname -m``, ``/proc/device-tree/model``, ``/proc/meminfo``, the ELF header of
the system's own ``/bin/sh``, ``dpkg --print-architecture`` and ``docker version --format '{{json .}}'``).

How the platform is decided (:func:`decide_platform`):

1. The userland decides the architecture family and word size, not the kernel: the container engine
   and everything installed on the device are userland programs, and a 32-bit engine pulls 32-bit
   images. The userland is read from the ELF header of ``/bin/sh`` (class, machine, ARM float ABI),
   else ``dpkg --print-architecture``, else (nothing readable) the kernel's ``uname -m``. So a 64-bit
   kernel under a 32-bit Raspberry Pi OS (``arm_64bit=1``, the default on a Pi 3/4/5 since 2023)
   is ``linux/arm/v7``, and ``armv8l`` (a 32-bit personality on a 64-bit kernel) is 32-bit too.
   When a reachable engine reports another architecture than the userland (say a static arm64
   ``dockerd`` on a 32-bit userland), the engine wins: it is the program that pulls.
2. For 32-bit ARM the CPU's architecture level caps the variant: ``min(level, 7)``. 32-bit ARM images
   stop at v7, so an ARMv8 CPU running a 32-bit OS is ``arm/v7``. A Pi Zero or Pi 1 (ARM1176, ARMv6)
   is ``arm/v6`` even with an ``armhf`` userland: Raspbian / Raspberry Pi OS ``armhf`` is built for
   ARMv6 + VFP, unlike Debian's ``armhf`` (ARMv7). The level comes from the CPU part number when it
   is a known core, then from the ``model name`` (``ARMv6-compatible processor ... (v6l)``), then
   from ``CPU architecture:``, then from ``uname -m``. ``CPU architecture: 7`` alone is not trusted
   for ARMv6: the ARM1176 uses the new CPUID scheme and the kernel reports 7 for it.
"""

from __future__ import annotations

import json
import os

from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    dpkg_name_from_elf,
    machine_bits,
    parse_elf_header,
    parse_platform,
    platform_from_elf,
    platform_from_machine,
)

# The ELF header fields the fact reports (the parser gives more).
ELF_FACT_KEYS = ("class", "bits", "endian", "machine", "machine_code", "flags", "float_abi", "eabi")

# ---------------------------------------------------------------------------------------------------
# /proc/cpuinfo

# ARM Ltd (implementer 0x41) cores: part -> (name, architecture level). Level 9 cores run v8 code.
ARM_PARTS = {
    "0xb02": ("ARM11 MPCore", 6),
    "0xb36": ("ARM1136", 6),
    "0xb56": ("ARM1156", 6),
    "0xb76": ("ARM1176", 6),
    "0xc05": ("Cortex-A5", 7),
    "0xc07": ("Cortex-A7", 7),
    "0xc08": ("Cortex-A8", 7),
    "0xc09": ("Cortex-A9", 7),
    "0xc0d": ("Cortex-A12", 7),
    "0xc0e": ("Cortex-A17", 7),
    "0xc0f": ("Cortex-A15", 7),
    "0xd03": ("Cortex-A53", 8),
    "0xd04": ("Cortex-A35", 8),
    "0xd05": ("Cortex-A55", 8),
    "0xd07": ("Cortex-A57", 8),
    "0xd08": ("Cortex-A72", 8),
    "0xd09": ("Cortex-A73", 8),
    "0xd0a": ("Cortex-A75", 8),
    "0xd0b": ("Cortex-A76", 8),
    "0xd0c": ("Neoverse-N1", 8),
    "0xd0d": ("Cortex-A77", 8),
    "0xd40": ("Neoverse-V1", 8),
    "0xd41": ("Cortex-A78", 8),
    "0xd44": ("Cortex-X1", 8),
    "0xd46": ("Cortex-A510", 9),
    "0xd47": ("Cortex-A710", 9),
    "0xd49": ("Neoverse-N2", 9),
    "0xd4f": ("Neoverse-V2", 9),
}
ARM_IMPLEMENTER = "0x41"


def parse_cpuinfo(text: str) -> tuple:
    """Split /proc/cpuinfo into (one dict per processor, dict of the lines outside any processor).

    Keys are kept as the kernel prints them, without the padding; the kernel pads with tabs but
    copies found on the web often use spaces, both are read. Lines without a colon are skipped.
    """
    processors = []
    outside = {}
    current = None
    for line in (text or "").splitlines():
        if not line.strip():
            current = None
            continue
        if ":" not in line:
            continue
        key, _sep, value = line.partition(":")
        key = key.strip()
        value = value.strip()
        if key.lower() == "processor" and value.isdigit():
            current = {"processor": value}
            processors.append(current)
        elif current is not None:
            current.setdefault(key, value)
        else:
            outside.setdefault(key, value)
    # Old ARM kernels print "Processor : ARMv6-compatible ..." once, before the numbered entries.
    return processors, outside


def _first(processors: list, outside: dict, *keys: str) -> str:
    for key in keys:
        for entry in processors:
            if entry.get(key):
                return entry[key]
        if outside.get(key):
            return outside[key]
    return ""


def _level_from_text(value: str):
    """``CPU architecture`` value -> level: "7" -> 7, "AArch64" -> 8, "5TEJ" -> 5, "" -> None."""
    value = value.strip()
    if value.lower() == "aarch64":
        return 8
    digits = ""
    for char in value:
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


def _level_from_model_name(name: str):
    """``ARMv6-compatible processor rev 7 (v6l)`` -> 6, ``ARMv7 Processor rev 5 (v7l)`` -> 7."""
    low = name.lower()
    for level in (5, 6, 7, 8):
        if f"armv{level}" in low or f"(v{level}l)" in low or f"(v{level}b)" in low:
            return level
    if "aarch64" in low:
        return 8
    return None


def _level_from_machine(machine: str):
    low = (machine or "").strip().lower()
    if low in ("aarch64", "arm64", "armv8l", "armv8b"):
        return 8
    if low.startswith("armv") and low[4:5].isdigit():
        return int(low[4])
    return None


def cpu_facts(cpuinfo: str, machine: str = "") -> dict:
    """The CPU as the fact reports it: architecture level, model name, implementer, part, features, cores."""
    processors, outside = parse_cpuinfo(cpuinfo)
    model_name = _first(processors, outside, "model name", "Processor", "cpu model")
    implementer = _first(processors, outside, "CPU implementer").lower()
    part = _first(processors, outside, "CPU part").lower()
    raw_arch = _first(processors, outside, "CPU architecture")
    features = _first(processors, outside, "Features", "flags").split()
    core = ""
    level = None
    source = ""
    if implementer == ARM_IMPLEMENTER and part in ARM_PARTS:
        core, level = ARM_PARTS[part]
        source = f"CPU part {part} ({core})"
    if level is None and model_name:
        level = _level_from_model_name(model_name)
        source = f"model name {model_name!r}" if level is not None else ""
    if level is None and raw_arch:
        level = _level_from_text(raw_arch)
        source = f"CPU architecture {raw_arch}" if level is not None else ""
    machine_level = _level_from_machine(machine)
    if level is None and machine_level is not None:
        level = machine_level
        source = f"uname -m {machine}"
    elif level == 7 and machine_level == 6 and source.startswith("CPU architecture"):
        # ARMv6 with the new CPUID scheme: the kernel prints "CPU architecture: 7" but runs armv6l.
        level, source = 6, f"uname -m {machine} (the kernel reports CPU architecture 7 for ARMv6)"
    is_arm = bool(implementer or raw_arch) or machine_level is not None
    return {
        "architecture_level": level if is_arm else None,
        "architecture_level_source": source if is_arm else "",
        "architecture": raw_arch,
        "model_name": model_name,
        "core": core,
        "implementer": implementer,
        "part": part,
        "features": features,
        "cores": len(processors) or None,
    }


def board_facts(cpuinfo: str, device_tree_model: str) -> dict:
    """The board: device-tree model (falling back to cpuinfo's ``Model``), ``Revision`` and ``Hardware``.

    The serial number is deliberately not returned.
    """
    processors, outside = parse_cpuinfo(cpuinfo)
    model = (device_tree_model or "").replace("\x00", "").strip()
    source = "/proc/device-tree/model" if model else ""
    if not model:
        model = _first(processors, outside, "Model")
        source = "/proc/cpuinfo Model" if model else ""
    return {
        "model": model,
        "model_source": source,
        "revision": _first(processors, outside, "Revision"),
        "hardware": _first(processors, outside, "Hardware"),
    }


# ---------------------------------------------------------------------------------------------------
# /proc/meminfo, uname -m, dpkg, docker


def parse_meminfo(text: str):
    """``MemTotal`` in MiB (integer), or None when the text has no MemTotal line."""
    for line in (text or "").splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() == "MemTotal":
            parts = value.split()
            if parts and parts[0].isdigit():
                kib = int(parts[0])
                unit = parts[1].lower() if len(parts) > 1 else "kb"
                return kib // 1024 if unit == "kb" else kib // (1024 * 1024)
    return None


def parse_dpkg_arch(text: str) -> str:
    """``dpkg --print-architecture`` output -> the Debian architecture (``armhf``), or ``""``."""
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def parse_docker_version(text: str):
    """``docker version --format '{{json .}}'`` -> engine facts, or None when the text is not that JSON.

    When the daemon does not answer, docker still prints the client part (and ``"Server": null``):
    the engine is then reported installed but not reachable, with the client's architecture.
    """
    try:
        data = json.loads((text or "").strip().splitlines()[0]) if (text or "").strip() else None
    except (ValueError, IndexError):
        return None
    if not isinstance(data, dict):
        return None
    client = data.get("Client") or {}
    server = data.get("Server") or {}
    reachable = bool(server.get("Version"))
    return {
        "name": "docker",
        "version": server.get("Version", ""),
        "api_version": server.get("ApiVersion", ""),
        "arch": server.get("Arch", "") if reachable else client.get("Arch", ""),
        "os": server.get("Os", "") if reachable else client.get("Os", ""),
        "client_version": client.get("Version", ""),
        "reachable": reachable,
    }


# ---------------------------------------------------------------------------------------------------
# The decision


def _userland(machine: str, elf, dpkg_arch: str, cpu: dict) -> tuple:
    """(Platform, Debian name, description) of the userland: ELF header, else dpkg, else kernel, else cpuinfo."""
    elf_plat = platform_from_elf(elf)
    dpkg_plat = None
    if dpkg_arch:
        try:
            dpkg_plat = parse_platform(dpkg_arch)
        except PlatformError:
            dpkg_plat = None
    if elf_plat is not None:
        same = dpkg_plat is not None and dpkg_plat.architecture == elf_plat.architecture
        name = dpkg_arch if same else dpkg_name_from_elf(elf)
        return elf_plat, name, f"a {elf_plat.bits}-bit {name} userland"
    if dpkg_plat is not None:
        return dpkg_plat, dpkg_arch, f"a {dpkg_plat.bits}-bit {dpkg_arch} userland"
    if machine:
        described = "an unknown userland (no readable /bin/sh, no dpkg), so the kernel's word size"
        return platform_from_machine(machine), "", described
    if cpu.get("architecture_level") is not None:
        # Only /proc/cpuinfo: an arm64 kernel prints no "model name" for 64-bit processes.
        arm64 = cpu["architecture_level"] >= 8 and not cpu.get("model_name")
        return parse_platform("arm64" if arm64 else "arm"), "", "an unknown userland, so the /proc/cpuinfo format"
    raise PlatformError("cannot tell the platform: no uname machine, no readable ELF header and no dpkg")


def _arm_variant(level, userland_name: str) -> tuple:
    """(variant platform or None, note) for a 32-bit ARM userland on a CPU of ``level``."""
    if level is None:
        return None, "CPU level unknown"
    plat = parse_platform(f"linux/arm/v{max(5, min(level, 7))}")
    if level > 7:
        return plat, f"ARMv{level} CPU: 32-bit ARM images stop at v7"
    if level == 6 and userland_name == "armhf":
        return plat, "ARMv6 CPU (Raspberry Pi OS armhf is built for ARMv6): never a v7 image"
    return plat, f"ARMv{level} CPU"


def decide_platform(machine: str, elf, dpkg_arch: str, cpu: dict, engine=None) -> tuple:
    """(Platform, reason) for a device; raises PlatformError when nothing names a known architecture.

    See the module docstring for the rules; ``reason`` is one sentence a person can check.
    """
    machine = (machine or "").strip()
    plat, userland_name, described = _userland(machine, elf, dpkg_arch, cpu)
    kbits = machine_bits(machine)
    kernel = f"{kbits}-bit kernel ({machine})" if kbits else (f"kernel {machine}" if machine else "an unknown kernel")
    notes = []
    if engine and engine.get("reachable") and engine.get("arch"):
        try:
            engine_plat = parse_platform(engine["arch"])
        except PlatformError:
            engine_plat = None
        if engine_plat is not None and engine_plat.architecture != plat.architecture:
            notes.append(f"the {engine['arch']} container engine pulls for its own architecture")
            plat = engine_plat
    if plat.architecture == "arm":
        level = cpu.get("architecture_level")
        variant, note = _arm_variant(level if level is not None else _level_from_machine(machine), userland_name)
        plat = variant or plat
        notes.append(note)
    reason = f"{kernel} with {described}"
    if notes:
        reason += "; " + "; ".join(notes)
    return plat, f"{reason}: {plat.oci}"


# ---------------------------------------------------------------------------------------------------
# I/O: the only part that touches the device

PROC_CPUINFO = "/proc/cpuinfo"
PROC_MEMINFO = "/proc/meminfo"
DEVICE_TREE_MODEL = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
ELF_CANDIDATES = ("/bin/sh", "/usr/bin/env", "/sbin/init")
COMMAND_TIMEOUT = 10


class DeviceReader:
    """Reads the device: a few small files, at most two short commands. ``module`` is an AnsibleModule."""

    def __init__(self, module, timeout: int = COMMAND_TIMEOUT):
        self.module = module
        self.timeout = timeout

    @staticmethod
    def read_text(path: str, limit: int = 262144) -> str:
        try:
            with open(path, "rb") as handle:
                return handle.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return ""

    def cpuinfo(self) -> str:
        return self.read_text(PROC_CPUINFO)

    def meminfo(self) -> str:
        return self.read_text(PROC_MEMINFO)

    def device_tree_model(self) -> str:
        for path in DEVICE_TREE_MODEL:
            text = self.read_text(path, 4096)
            if text:
                return text
        return ""

    @staticmethod
    def machine() -> str:
        return os.uname().machine

    def elf_header(self) -> tuple:
        """(path, first 64 bytes) of the first readable system binary; ("", b"") when none is."""
        for path in ELF_CANDIDATES:
            real = os.path.realpath(path)
            try:
                with open(real, "rb") as handle:
                    data = handle.read(64)
            except OSError:
                continue
            if data[:4] == b"\x7fELF":
                return real, data
        return "", b""

    def _run(self, argv: list) -> str:
        timeout_bin = self.module.get_bin_path("timeout")
        if timeout_bin:
            argv = [timeout_bin, str(self.timeout), *argv]
        rc, out, _err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        # docker exits 1 when the daemon does not answer but still prints the client JSON.
        return out if rc in (0, 1) else ""

    def dpkg_arch(self) -> str:
        dpkg = self.module.get_bin_path("dpkg")
        return self._run([dpkg, "--print-architecture"]) if dpkg else ""

    def docker_version(self):
        """docker's JSON version text, or None when no docker CLI is installed."""
        docker = self.module.get_bin_path("docker")
        if not docker:
            return None
        return self._run([docker, "version", "--format", "{{json .}}"])


def engine_mismatch(engine, plat, userland_arch: str) -> str:
    """Why the Docker engine does not run the device's own architecture, ``""`` when it does (or none is installed).

    The engine's Go architecture must be the platform's and the userland's (a 32-bit OS needs the armhf engine
    even on a 64-bit kernel).
    """
    if engine is None:
        return ""
    if not engine.get("reachable"):
        return "no engine answers"
    wanted = {plat.architecture}
    try:
        wanted.add(parse_platform(userland_arch).architecture if userland_arch else plat.architecture)
    except PlatformError:
        pass
    if wanted == {engine.get("arch")}:
        return ""
    userland = f" and the userland {userland_arch}" if userland_arch else ""
    return f"it is {engine.get('arch') or 'of no known architecture'}, the platform is {plat.oci}{userland}"


def gather(reader) -> dict:
    """The ``fleet_device`` fact from a reader (:class:`DeviceReader` or a test double)."""
    machine = (reader.machine() or "").strip()
    cpuinfo = reader.cpuinfo()
    cpu = cpu_facts(cpuinfo, machine)
    elf_path, elf_bytes = reader.elf_header()
    header = parse_elf_header(elf_bytes)
    elf = None
    if header is not None:
        elf = {"path": elf_path, **{key: header[key] for key in ELF_FACT_KEYS}}
    dpkg_arch = parse_dpkg_arch(reader.dpkg_arch())
    docker_text = reader.docker_version()
    engine = None
    if docker_text is not None:
        engine = parse_docker_version(docker_text) or {
            "name": "docker",
            "version": "",
            "api_version": "",
            "arch": "",
            "os": "",
            "client_version": "",
            "reachable": False,
        }
    plat, reason = decide_platform(machine, elf, dpkg_arch, cpu, engine)
    userland_arch = dpkg_arch or (dpkg_name_from_elf(elf) if elf else "")
    if elf is not None:
        userland_bits = elf["bits"]
    elif dpkg_arch:
        try:
            userland_bits = parse_platform(dpkg_arch).bits
        except PlatformError:
            userland_bits = None
    else:
        userland_bits = None
    return {
        "machine": machine,
        "kernel_bits": machine_bits(machine),
        "userland_arch": userland_arch,
        "userland_bits": userland_bits,
        "elf": elf,
        "cpu": cpu,
        "board": board_facts(cpuinfo, reader.device_tree_model()),
        "memory_mb": parse_meminfo(reader.meminfo()),
        "engine": engine,
        "platform": plat.oci,
        "platform_reason": reason,
        "engine_mismatch": engine_mismatch(engine, plat, userland_arch),
    }
