# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The collection's single place for platform strings.

Every spelling users and tools write for a platform (``aarch64``, ``arm64``, ``linux/arm64/v8``,
``armhf``, ``armv7l``, ``x86_64``, ``ppc64el``, ...) is parsed into a :class:`Platform` (os,
architecture, variant) whose :attr:`Platform.oci` string is the normalised OCI form
(``linux/arm64``, ``linux/arm/v7``). From a Platform the other names follow: the kernel's
``uname -m`` machine, Debian's dpkg architecture, QEMU's user-mode target, the word size and the ELF
machine. The one ELF header parser of the collection lives here too (device facts read a system binary
with it, binfmt its emulators and probes), as does the list of ``uname -m`` values a container of a
platform may print on a host.

Normalisation follows containerd's ``platforms.Normalize``: ``arm64/v8`` is written ``arm64``,
plain ``arm`` means ``arm/v7``, ``amd64/v1`` is ``amd64``, ``armhf`` is ``arm/v7`` and ``armel``
is ``arm/v6``.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass

KNOWN_OS = ("linux", "windows", "darwin", "freebsd")


@dataclass(frozen=True)
class _Arch:
    oci: str  # OCI / Go architecture name (Go's GOARCH, docker's `Arch`)
    variants: tuple  # allowed variants, the first one is the default ("" = none)
    omit_variant: str  # the variant the normalised form leaves out ("" = none)
    qemu: str  # QEMU user-mode target (qemu-<target>-static)
    machines: dict  # variant -> the kernel's `uname -m` machines, the usual one first
    dpkg: dict  # variant -> Debian architecture
    bits: int  # word size
    elf_machine: int  # ELF e_machine
    elf_name: str  # what readelf calls that machine
    byteorder: str = "little"


_ARCHES = (
    _Arch("amd64", ("", "v1", "v2", "v3", "v4"), "v1", "x86_64", {"": ("x86_64",)}, {"": "amd64"}, 64, 62, "x86-64"),
    _Arch("386", ("",), "", "i386", {"": ("i686", "i386")}, {"": "i386"}, 32, 3, "x86"),
    _Arch("arm64", ("v8",), "v8", "aarch64", {"v8": ("aarch64",)}, {"v8": "arm64"}, 64, 183, "AArch64"),
    _Arch(
        "arm",
        ("v7", "v6", "v5"),
        "",
        "arm",
        {"v7": ("armv7l",), "v6": ("armv6l",), "v5": ("armv5tel", "armv5tejl")},
        {"v7": "armhf", "v6": "armel", "v5": "armel"},
        32,
        40,
        "ARM",
    ),
    _Arch("riscv64", ("",), "", "riscv64", {"": ("riscv64",)}, {"": "riscv64"}, 64, 243, "RISC-V"),
    _Arch("ppc64le", ("",), "", "ppc64le", {"": ("ppc64le",)}, {"": "ppc64el"}, 64, 21, "PowerPC64"),
    _Arch("s390x", ("",), "", "s390x", {"": ("s390x",)}, {"": "s390x"}, 64, 22, "S390", "big"),
    _Arch("mips64le", ("",), "", "mips64el", {"": ("mips64",)}, {"": "mips64el"}, 64, 8, "MIPS"),
    _Arch("loong64", ("",), "", "loongarch64", {"": ("loongarch64",)}, {"": "loong64"}, 64, 258, "LoongArch"),
)
_BY_OCI = {a.oci: a for a in _ARCHES}

# Every other name for an architecture -> (OCI architecture, implied variant or None).
_ALIASES = {
    "amd64": ("amd64", None),
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "x64": ("amd64", None),
    "386": ("386", None),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "x86": ("386", None),
    "arm64": ("arm64", None),
    "aarch64": ("arm64", None),
    "arm": ("arm", None),
    "armhf": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "armv7hl": ("arm", "v7"),
    "armv8l": ("arm", "v7"),  # 32-bit user space on an ARMv8 CPU
    "armel": ("arm", "v6"),
    "armv6l": ("arm", "v6"),
    "armv6hl": ("arm", "v6"),
    "armv5l": ("arm", "v5"),
    "armv5tel": ("arm", "v5"),
    "armv5tejl": ("arm", "v5"),
    "riscv64": ("riscv64", None),
    "ppc64le": ("ppc64le", None),
    "ppc64el": ("ppc64le", None),
    "powerpc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "mips64le": ("mips64le", None),
    "mips64el": ("mips64le", None),
    "loong64": ("loong64", None),
    "loongarch64": ("loong64", None),
}

# Spellings that look like an architecture but carry a version: say what to write instead.
_WRONG_FORMS = {
    "armv5": "linux/arm/v5",
    "armv6": "linux/arm/v6",
    "armv7": "linux/arm/v7",
    "armv8": "linux/arm64",
    "arm32v5": "linux/arm/v5",
    "arm32v6": "linux/arm/v6",
    "arm32v7": "linux/arm/v7",
    "arm64v8": "linux/arm64",
    "aarch32": "linux/arm/v7",
}


class PlatformError(ValueError):
    """A platform string that cannot be parsed; the message says what to write instead."""


@dataclass(frozen=True)
class Platform:
    """A normalised platform: always built by :func:`parse_platform` or :func:`platform_from_dict`."""

    os: str
    architecture: str
    variant: str = ""

    @property
    def oci(self) -> str:
        """The normalised OCI string: ``linux/arm64``, ``linux/arm/v7``, ``linux/amd64/v3``."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def __str__(self) -> str:
        return self.oci

    @property
    def _arch(self) -> _Arch:
        return _BY_OCI[self.architecture]

    @property
    def effective_variant(self) -> str:
        """The variant including the implied default (``v8`` for arm64, ``v7`` for arm)."""
        arch = self._arch
        if self.variant:
            return self.variant
        return arch.omit_variant if arch.omit_variant in arch.variants else arch.variants[0]

    @property
    def qemu_target(self) -> str:
        """QEMU's user-mode target name: ``aarch64``, ``arm``, ``mips64el``, ``loongarch64``, ..."""
        return self._arch.qemu

    @property
    def machines(self) -> tuple:
        """The kernel's ``uname -m`` values of this platform, the usual one first."""
        machines = self._arch.machines
        return machines.get(self.effective_variant, machines.get(self._arch.variants[0], ()))

    @property
    def machine(self) -> str:
        """The kernel's ``uname -m`` for this platform (``aarch64``, ``armv7l``, ``x86_64``)."""
        return (self.machines or ("",))[0]

    @property
    def bits(self) -> int:
        """The word size: 64 (``linux/arm64``) or 32 (``linux/arm/v7``, ``linux/386``)."""
        return self._arch.bits

    @property
    def dpkg_arch(self) -> str:
        """Debian's architecture name (``arm64``, ``armhf``, ``ppc64el``, ``amd64``)."""
        dpkg = self._arch.dpkg
        return dpkg.get(self.effective_variant, dpkg.get(self._arch.variants[0], ""))

    def to_dict(self) -> dict:
        """The OCI image-index ``platform`` object (``variant`` only when set)."""
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out


def known_architectures() -> list:
    """The OCI architecture names this collection knows, in a stable order."""
    return [a.oci for a in _ARCHES]


def known_platforms() -> list:
    """Every normalised linux platform string this collection knows (used in error messages)."""
    out = []
    for arch in _ARCHES:
        variants = [v for v in arch.variants if v != arch.omit_variant] or [""]
        for variant in variants:
            out.append(Platform("linux", arch.oci, variant).oci)
    return out


def known_spellings() -> list:
    """Every accepted architecture spelling (OCI, kernel, Debian, QEMU names), sorted."""
    return sorted(_ALIASES)


def _normalise_variant(arch: _Arch, variant: str, spec: str) -> str:
    if variant and not variant.startswith("v") and variant.isdigit():
        variant = "v" + variant
    if arch.oci == "arm64" and variant in ("v8.0",):
        variant = "v8"
    if variant not in arch.variants:
        allowed = ", ".join(v for v in arch.variants if v) or "none"
        hint = ""
        if arch.oci == "arm64" and variant in ("v5", "v6", "v7"):
            hint = f"; for 32-bit ARM write linux/arm/{variant}"
        elif arch.oci == "arm" and variant == "v8":
            hint = "; for 64-bit ARM write linux/arm64"
        raise PlatformError(
            f"invalid platform {spec!r}: architecture {arch.oci} has no variant {variant!r}"
            f" (allowed variants: {allowed}){hint}"
        )
    if variant == arch.omit_variant:
        return ""
    return variant


def _lookup_arch(name: str, spec: str):
    if name in _WRONG_FORMS:
        raise PlatformError(
            f"invalid platform {spec!r}: {name!r} is not an architecture name; write {_WRONG_FORMS[name]!r}"
        )
    if name not in _ALIASES:
        raise PlatformError(
            f"unknown architecture {name!r} in {spec!r}; known platforms: {', '.join(known_platforms())}"
            f" (also accepted: {', '.join(known_spellings())})"
        )
    return _ALIASES[name]


def parse_platform(spec, default_os: str = "linux") -> Platform:
    """Parse any spelling into a normalised :class:`Platform`; raise :class:`PlatformError` otherwise.

    Accepted: ``arch``, ``arch/variant``, ``os/arch`` and ``os/arch/variant`` where arch is any
    OCI, kernel (``uname -m``), Debian or QEMU name. Case and surrounding blanks are ignored.
    """
    if isinstance(spec, Platform):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise PlatformError(f"invalid platform {spec!r}: expected a string such as 'linux/arm64' or 'aarch64'")
    text = spec.strip().lower()
    parts = text.split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise PlatformError(f"invalid platform {spec!r}: expected os/architecture[/variant], e.g. 'linux/arm/v7'")
    os_name = default_os
    if parts[0] in KNOWN_OS:
        os_name = parts.pop(0)
        if not parts:
            raise PlatformError(f"invalid platform {spec!r}: an architecture is missing, e.g. '{os_name}/arm64'")
    elif len(parts) == 3:
        raise PlatformError(f"unknown operating system {parts[0]!r} in {spec!r}; known: {', '.join(KNOWN_OS)}")
    if len(parts) == 2 and parts[1] in _ALIASES and parts[0] not in _ALIASES and parts[0] not in _WRONG_FORMS:
        raise PlatformError(f"unknown operating system {parts[0]!r} in {spec!r}; known: {', '.join(KNOWN_OS)}")
    oci_arch, implied = _lookup_arch(parts[0], spec)
    variant = parts[1] if len(parts) > 1 else ""
    arch = _BY_OCI[oci_arch]
    if implied is not None:
        if variant and _normalise_variant(arch, variant, spec) != _normalise_variant(arch, implied, spec):
            raise PlatformError(
                f"invalid platform {spec!r}: {parts[0]!r} already means linux/{oci_arch}/{implied};"
                f" write 'linux/{oci_arch}/{variant}' for {variant}"
            )
        variant = implied
    if not variant:
        variant = arch.variants[0]
    return Platform(os_name, oci_arch, _normalise_variant(arch, variant, spec))


def normalize_platform(spec, default_os: str = "linux") -> str:
    """``parse_platform(spec).oci``: the normalised OCI string."""
    return parse_platform(spec, default_os).oci


def platform_from_dict(data: dict) -> Platform:
    """A Platform from an OCI ``platform`` object (``os``, ``architecture``, optional ``variant``)."""
    os_name = str(data.get("os") or "linux")
    text = f"{os_name}/{data.get('architecture', '')}"
    if data.get("variant"):
        text += f"/{data['variant']}"
    return parse_platform(text)


def platform_from_qemu_target(target: str) -> Platform:
    """The platform QEMU's ``qemu-<target>`` emulates (``arm`` -> linux/arm/v7)."""
    for arch in _ARCHES:
        if arch.qemu == target:
            return parse_platform(arch.oci)
    raise PlatformError(
        f"unknown QEMU target {target!r}; known: {', '.join(a.qemu for a in _ARCHES)}",
    )


def platform_from_machine(machine: str, byteorder: str = sys.byteorder) -> Platform:
    """The platform of a kernel ``uname -m`` machine; ``mips64`` needs the byte order to tell endianness."""
    name = machine.strip().lower()
    if name == "mips64":
        if byteorder == "little":
            return parse_platform("mips64le")
        raise PlatformError("big-endian mips64 is not supported; known platforms: " + ", ".join(known_platforms()))
    return parse_platform(name)


def host_platform() -> Platform:
    """The platform of the machine this code runs on (from ``os.uname()``)."""
    return platform_from_machine(os.uname().machine)


def native_platforms(host: Platform) -> list:
    """Platforms the host runs without emulation: itself, plus linux/386 on linux/amd64.

    32-bit ARM on arm64 is not counted: many arm64 CPUs (Apple M, Graviton 3) lack AArch32.
    """
    out = [Platform(host.os, host.architecture, "" if host.architecture == "amd64" else host.variant)]
    if host.architecture == "amd64":
        out.append(parse_platform("386"))
    return out


def emulated_platforms(target: str) -> list:
    """The OCI platforms an emulator for a QEMU target makes runnable, like buildx lists them."""
    if target == "arm":
        return [parse_platform("linux/arm/v7"), parse_platform("linux/arm/v6")]
    return [platform_from_qemu_target(target)]


def compatible_platforms(host) -> list:
    """Platforms a host of ``host`` pulls, most preferred first (added for manifest_info and manifest).

    The same rules as containerd's platform matcher for one architecture: the exact platform first,
    then lower variants of the same architecture (an arm/v7 host runs arm/v6 and arm/v5 images,
    amd64/v3 runs v2 and v1). ``arm64`` and ``arm64/v8`` are one platform. No other architecture
    is added: many arm64 CPUs cannot run 32-bit ARM code.
    """
    host = parse_platform(host)
    out = [host]
    arch = _BY_OCI[host.architecture]
    levels = sorted((v for v in arch.variants if v), key=lambda v: int(v[1:]) if v[1:].isdigit() else 0)
    current = host.effective_variant
    if current in levels:
        for variant in reversed(levels[: levels.index(current)]):
            candidate = Platform(host.os, host.architecture, "" if variant == arch.omit_variant else variant)
            if candidate not in out:
                out.append(candidate)
    return out


def container_machines(platform, host) -> list:
    """The ``uname -m`` values a container of ``platform`` may print on a host of platform ``host``.

    Its own machines; under QEMU user emulation the emulator's CPU instead (``qemu-arm`` is an ARMv7 CPU
    whatever the image's variant, so an arm/v6 container prints armv7l); a platform the host runs natively
    without being it (linux/386 on linux/amd64) prints the host kernel's machine.
    """
    plat, host = parse_platform(platform), parse_platform(host)
    out = list(plat.machines)
    if plat.architecture == host.architecture:
        extra = [host.machine]
    elif plat in native_platforms(host):
        extra = [host.machine]
    else:
        extra = [platform_from_qemu_target(plat.qemu_target).machine]
    return out + [m for m in extra if m and m not in out]


def machine_bits(machine: str):
    """The kernel's word size from its ``uname -m`` (64, 32), None when unknown.

    ``armv8l`` and ``armv8b`` are a 32-bit personality (``linux32``) on a 64-bit kernel; a 32-bit ARM kernel
    says armv7l or lower.
    """
    low = (machine or "").strip().lower()
    if not low:
        return None
    if low in ("armv8l", "armv8b", "ppc64", "mips64", "arm64", "amd64"):
        return 64
    try:
        return platform_from_machine(low).bits
    except PlatformError:
        pass
    if low.startswith(("armv", "i386", "i486", "i586", "i686", "riscv32", "mips", "ppc")):
        return 32
    return None


# ---------------------------------------------------------------------------------------------- ELF

EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400
PT_INTERP = 3


def parse_elf_header(data: bytes):
    """The ELF header of a binary, or None when ``data`` does not start with one.

    ``{class, bits, endian, machine, machine_code, flags, flags_value, float_abi, eabi, type, entry, phnum,
    static}``: ``machine`` is readelf's name (``AArch64``), ``flags`` e_flags as hex, ``float_abi`` ``hard`` or
    ``soft`` for ARM (from e_flags), ``static`` False when a program header is PT_INTERP (dynamically linked),
    None when the program headers lie beyond ``data``.
    """
    if not data or len(data) < 52 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    bits = 32 if data[4] == 1 else 64
    order = "<" if data[5] == 1 else ">"
    if bits == 64:
        if len(data) < 64:
            return None
        e_type, code, _version, entry, phoff, _shoff, flags, _ehsize, phentsize, phnum = struct.unpack_from(
            order + "HHIQQQIHHH", data, 16
        )
    else:
        e_type, code, _version, entry, phoff, _shoff, flags, _ehsize, phentsize, phnum = struct.unpack_from(
            order + "HHIIIIIHHH", data, 16
        )
    static = True
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            static = None
            break
        if struct.unpack_from(order + "I", data, off)[0] == PT_INTERP:
            static = False
            break
    float_abi, eabi = "", None
    if code == 40:
        eabi = flags >> 24
        if flags & EF_ARM_ABI_FLOAT_HARD:
            float_abi = "hard"
        elif flags & EF_ARM_ABI_FLOAT_SOFT:
            float_abi = "soft"
    names = {a.elf_machine: a.elf_name for a in _ARCHES}
    return {
        "class": f"ELF{bits}",
        "bits": bits,
        "endian": "little" if order == "<" else "big",
        "machine": names.get(code, f"EM_{code}"),
        "machine_code": code,
        "flags": f"0x{flags:08x}",
        "flags_value": flags,
        "float_abi": float_abi,
        "eabi": eabi,
        "type": e_type,
        "entry": entry,
        "phnum": phnum,
        "static": static,
    }


def platform_from_elf(elf):
    """The platform whose programs an ELF header belongs to (for ARM: v6 when soft-float, else v7), or None."""
    if not elf:
        return None
    for arch in _ARCHES:
        if (arch.elf_machine, arch.bits, arch.byteorder) != (elf["machine_code"], elf["bits"], elf["endian"]):
            continue
        if arch.oci == "arm":
            return parse_platform("armel" if elf.get("float_abi") == "soft" else "armhf")
        return parse_platform(arch.oci)
    return None


def dpkg_name_from_elf(elf) -> str:
    """The Debian architecture an ELF header implies (``armhf`` for hard-float ARM, ``armel`` soft), or ``""``."""
    plat = platform_from_elf(elf)
    return plat.dpkg_arch if plat is not None else ""


def elf_identity(platform) -> tuple:
    """``(bits, byte order "<" or ">", e_machine)`` of a platform's programs (to write an ELF header)."""
    arch = parse_platform(platform)._arch
    return arch.bits, "<" if arch.byteorder == "little" else ">", arch.elf_machine
