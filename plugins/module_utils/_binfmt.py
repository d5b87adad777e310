# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""binfmt_misc for QEMU user-mode emulation: the magic table, parsing, planning, ELF probes, kernel I/O.

Everything except :class:`BinfmtMisc` and :func:`find_emulator` is pure and unit-tested on captured text.
"""

from __future__ import annotations

import errno
import glob
import os
import struct
from dataclasses import dataclass

from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    elf_identity,
    emulated_platforms,
    native_platforms,
    parse_elf_header,
    parse_platform,
    platform_from_machine,
    platform_from_qemu_target,
)

PROC_ROOT = "/proc/sys/fs/binfmt_misc"
PERSIST_DIR = "/etc/binfmt.d"
SYSTEMD_BINFMT = ("/usr/lib/systemd/systemd-binfmt", "/lib/systemd/systemd-binfmt")
EMULATOR_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/libexec/qemu-user-static")
PERSIST_HEADER = "# Managed by fleet.multiarch.binfmt: QEMU user-mode emulation, read by systemd-binfmt."
VALID_FLAGS = "POCF"  # the order the kernel prints them
PROBE_EXIT_CODE = 42


@dataclass(frozen=True)
class QemuTarget:
    """One row of QEMU's scripts/qemu-binfmt-conf.sh: the ELF header pattern of a target."""

    target: str
    magic: bytes
    mask: bytes
    fedora_package: str


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


_ELF_MASK = "ffffffffffffff00fffffffffffffffffeffffff"
_X86_MASK = "fffffffffffefe00fffffffffffffffffeffffff"

# The magic and mask bytes of QEMU's qemu-binfmt-conf.sh (the same bytes Debian's qemu-user-static installs
# under /usr/share/binfmts and Fedora under /usr/lib/binfmt.d); tests compare them with those files.
QEMU_TABLE = {
    t.target: t
    for t in (
        QemuTarget("aarch64", _hex("7f454c460201010000000000000000000200b700"), _hex(_ELF_MASK), "aarch64"),
        QemuTarget("arm", _hex("7f454c4601010100000000000000000002002800"), _hex(_ELF_MASK), "arm"),
        QemuTarget("riscv64", _hex("7f454c460201010000000000000000000200f300"), _hex(_ELF_MASK), "riscv"),
        QemuTarget(
            "ppc64le",
            _hex("7f454c4602010100000000000000000002001500"),
            _hex("fffffffffffffffcfffffffffffffffffeffff00"),
            "ppc",
        ),
        QemuTarget(
            "s390x",
            _hex("7f454c4602020100000000000000000000020016"),
            _hex("fffffffffffffffcfffffffffffffffffffeffff"),
            "s390x",
        ),
        QemuTarget("i386", _hex("7f454c4601010100000000000000000002000300"), _hex(_X86_MASK), "x86"),
        QemuTarget(
            "mips64el",
            _hex("7f454c4602010100000000000000000002000800"),
            _hex("ffffffffffffff00fefffffffffffffffeffffff"),
            "mips",
        ),
        QemuTarget(
            "loongarch64",
            _hex("7f454c4602010100000000000000000002000201"),
            _hex("fffffffffffffffc00fffffffffffffffeffffff"),
            "loongarch64",
        ),
        QemuTarget("x86_64", _hex("7f454c4602010100000000000000000002003e00"), _hex(_X86_MASK), "x86"),
    )
}


class BinfmtError(Exception):
    """A failure the module reports with fail_json; the message says what to do."""


# ---------------------------------------------------------------------------------------------- flags


def normalize_flags(flags: str) -> str:
    """Validate flags and return them as the kernel prints them (order P O C F; C implies O)."""
    text = (flags or "").strip().upper()
    bad = sorted({c for c in text if c not in VALID_FLAGS})
    if bad:
        raise BinfmtError(
            f"invalid binfmt flags {flags!r}: unknown {', '.join(bad)}; allowed are P (preserve argv[0]),"
            " C (credentials, for setuid programs such as sudo), O (open binary) and F (fix binary)"
        )
    chosen = set(text)
    if "C" in chosen:
        chosen.add("O")
    return "".join(c for c in VALID_FLAGS if c in chosen)


# ---------------------------------------------------------------------------------------------- escapes


def escape_bytes(data: bytes) -> str:
    r"""Every byte as ``\xHH``: safe in the register line and in binfmt.d files (no ``:`` or blanks)."""
    return "".join(f"\\x{b:02x}" for b in data)


def unescape_bytes(text: str) -> bytes:
    r"""Decode ``\x7fELF\x02`` (Debian binfmts, binfmt.d, qemu-binfmt-conf.sh) into bytes."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] == "x" and i + 3 < len(text):
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append(ord(text[i + 1]))
            i += 2
            continue
        out.append(ord(text[i]))
        i += 1
    return bytes(out)


# ---------------------------------------------------------------------------------------------- parsing


def parse_entry(name: str, text: str) -> dict:
    """Parse ``/proc/sys/fs/binfmt_misc/<name>`` into a dict (magic and mask as lowercase hex)."""
    entry = {
        "name": name,
        "enabled": False,
        "interpreter": "",
        "flags": "",
        "type": "magic",
        "offset": 0,
        "magic": "",
        "mask": "",
        "extension": "",
    }
    for line in text.splitlines():
        if line in ("enabled", "disabled"):
            entry["enabled"] = line == "enabled"
        elif line.startswith("interpreter "):
            entry["interpreter"] = line[len("interpreter ") :]
        elif line.startswith("flags:"):
            entry["flags"] = line[len("flags:") :].strip()
        elif line.startswith("offset "):
            entry["offset"] = int(line.split()[1])
        elif line.startswith("magic "):
            entry["magic"] = line.split()[1].lower()
        elif line.startswith("mask "):
            entry["mask"] = line.split()[1].lower()
        elif line.startswith("extension "):
            entry["type"] = "extension"
            entry["extension"] = line[len("extension ") :]
    return entry


def parse_status(text: str) -> bool:
    """``/proc/sys/fs/binfmt_misc/status`` -> True when binfmt_misc is globally enabled."""
    return text.strip() == "enabled"


def parse_register_line(line: str) -> dict:
    """Parse ``:name:type:offset:magic:mask:interpreter:flags`` (binfmt.d) into the :func:`parse_entry` shape."""
    text = line.strip()
    if not text or text[0] in "#;":
        raise BinfmtError(f"not a binfmt registration line: {line!r}")
    delim = text[0]
    fields = text[1:].split(delim)
    if len(fields) < 6:
        raise BinfmtError(
            f"invalid binfmt registration line (expected :name:type:offset:magic:mask:interpreter:flags): {line!r}"
        )
    name, kind, offset, magic, mask, interpreter = fields[:6]
    flags = fields[6] if len(fields) > 6 else ""
    entry = {
        "name": name,
        "enabled": True,
        "interpreter": interpreter,
        "flags": normalize_flags(flags),
        "type": "magic" if kind == "M" else "extension",
        "offset": int(offset or 0),
        "magic": "",
        "mask": "",
        "extension": "",
    }
    if kind == "M":
        entry["magic"] = unescape_bytes(magic).hex()
        entry["mask"] = unescape_bytes(mask).hex() if mask else ""
    else:
        entry["extension"] = magic
    return entry


def parse_debian_binfmts(text: str) -> dict:
    """Parse a Debian ``/usr/share/binfmts/<name>`` file (``key value`` lines) into a dict of strings."""
    out = {}
    for line in text.splitlines():
        if " " in line:
            key, value = line.split(" ", 1)
            out[key] = value.strip()
    return out


# ---------------------------------------------------------------------------------------------- matching


def handles(entry: dict, header: bytes) -> bool:
    """True when the kernel would hand a file starting with ``header`` to this entry (ignoring enabled)."""
    if entry.get("type", "magic") != "magic" or not entry.get("magic"):
        return False
    magic = bytes.fromhex(entry["magic"])
    mask = bytes.fromhex(entry["mask"]) if entry.get("mask") else b"\xff" * len(magic)
    offset = int(entry.get("offset") or 0)
    chunk = header[offset : offset + len(magic)]
    if len(chunk) < len(magic):
        return False
    return all((c & m) == (g & m) for c, g, m in zip(chunk, magic, mask))


def target_of(entry: dict):
    """The QEMU target whose binaries this entry catches (by QEMU's own magic), or None."""
    for target in QEMU_TABLE.values():
        if handles(entry, target.magic):
            return target.target
    return None


def desired_entry(target: str, name: str, interpreter: str, flags: str) -> dict:
    """The entry to register for a QEMU target, in the :func:`parse_entry` shape."""
    row = QEMU_TABLE[target]
    return {
        "name": name,
        "enabled": True,
        "interpreter": interpreter,
        "flags": normalize_flags(flags),
        "type": "magic",
        "offset": 0,
        "magic": row.magic.hex(),
        "mask": row.mask.hex(),
        "extension": "",
    }


def _masked(entry: dict) -> tuple:
    magic = bytes.fromhex(entry.get("magic") or "")
    mask = bytes.fromhex(entry["mask"]) if entry.get("mask") else b"\xff" * len(magic)
    return bytes(a & b for a, b in zip(magic, mask)), mask


def same_registration(current: dict, desired: dict) -> bool:
    """Equal interpreter, flags, offset, mask and masked magic (what the kernel acts on)."""
    return (
        current.get("type") == "magic"
        and current.get("interpreter") == desired["interpreter"]
        and normalize_flags(current.get("flags", "")) == normalize_flags(desired["flags"])
        and int(current.get("offset") or 0) == int(desired.get("offset") or 0)
        and _masked(current) == _masked(desired)
    )


def render_register_line(entry: dict) -> str:
    """The ``:name:M:offset:magic:mask:interpreter:flags`` line the kernel and systemd-binfmt read."""
    for field in ("name", "interpreter"):
        value = entry[field]
        if not value or ":" in value or "\n" in value or (field == "name" and "/" in value):
            raise BinfmtError(f"invalid binfmt {field} {value!r}: it must be non-empty without ':', '/' or newlines")
    offset = int(entry.get("offset") or 0)
    magic = escape_bytes(bytes.fromhex(entry["magic"]))
    mask = escape_bytes(bytes.fromhex(entry["mask"])) if entry.get("mask") else ""
    return f":{entry['name']}:M:{offset or ''}:{magic}:{mask}:{entry['interpreter']}:{entry['flags']}"


def render_persist_file(entry: dict) -> str:
    """Content of ``/etc/binfmt.d/<name>.conf`` for an entry."""
    return f"{PERSIST_HEADER}\n{render_register_line(entry)}\n"


def describe(entry: dict) -> str:
    """One line for diffs: the register line, marked when the entry is disabled."""
    if entry.get("type") != "magic":
        line = f":{entry['name']}:E::{entry.get('extension', '')}::{entry['interpreter']}:{entry.get('flags', '')}"
    else:
        line = render_register_line(dict(entry, flags=entry.get("flags", "")))
    return line + ("" if entry.get("enabled", True) else "  # disabled")


# ---------------------------------------------------------------------------------------------- planning


def plan_present(desired: list, current: dict, replace_conflicting: bool = True) -> tuple:
    """Actions that make ``desired`` entries active; returns (actions, replaced).

    An action is a dict ``{"action": "register"|"remove"|"enable", "name": ..., "entry": ...}``.
    New entries are registered before other-named conflicting entries are removed, so a platform is
    never left without a handler; an entry with the same name but other settings is removed first
    (the kernel refuses a duplicate name).
    """
    actions = []
    replaced = []
    desired_names = {d["name"] for d in desired}
    removed = set()
    for want in desired:
        have = current.get(want["name"])
        header = bytes.fromhex(want["magic"])
        if have is not None and same_registration(have, want):
            if not have["enabled"]:
                actions.append({"action": "enable", "name": want["name"], "entry": want})
        else:
            if have is not None:
                actions.append({"action": "remove", "name": have["name"], "entry": have})
                replaced.append({"old": have, "new": want})
            actions.append({"action": "register", "name": want["name"], "entry": want})
        if not replace_conflicting:
            continue
        for other in sorted(current.values(), key=lambda e: e["name"]):
            name = other["name"]
            if name in desired_names or name in removed or not other["enabled"] or not handles(other, header):
                continue
            removed.add(name)
            actions.append({"action": "remove", "name": name, "entry": other})
            replaced.append({"old": other, "new": want})
    return actions, replaced


def plan_absent(names: list, current: dict) -> list:
    """Remove actions for those of ``names`` that are registered."""
    return [{"action": "remove", "name": n, "entry": current[n]} for n in sorted(set(names)) if n in current]


def apply_plan(current: dict, actions: list) -> dict:
    """The entries after ``actions`` (what check mode predicts)."""
    after = {k: dict(v) for k, v in current.items()}
    for act in actions:
        if act["action"] == "remove":
            after.pop(act["name"], None)
        elif act["action"] == "register":
            after[act["name"]] = dict(act["entry"], enabled=True)
        elif act["action"] == "enable":
            after[act["name"]]["enabled"] = True
    return after


def emulated_targets(entries: dict, status_enabled: bool = True) -> list:
    """QEMU targets handled by an enabled entry, in :data:`QEMU_TABLE` order."""
    if not status_enabled:
        return []
    found = {target_of(e) for e in entries.values() if e.get("enabled")}
    return [t for t in QEMU_TABLE if t in found]


def supported_platforms(host, entries: dict, status_enabled: bool) -> list:
    """What a ``host`` (a Platform) runs: its native platforms first, then those an enabled entry emulates.

    The one place that adds emulation to a host's own platforms (binfmt, binfmt_info, image_build and the
    device check of container_rollout read it).
    """
    out = [p.oci for p in native_platforms(host)]
    for target in emulated_targets(entries, status_enabled):
        for plat in emulated_platforms(target):
            if plat.oci not in out:
                out.append(plat.oci)
    return out


def runnable_platforms(device: str, entries: dict, status_enabled: bool, machine: str = "") -> tuple:
    """(native, emulated) platforms of a ``device`` platform with these binfmt_misc ``entries``.

    Native: the device's own (and linux/386 on linux/amd64), and its kernel's (``machine``, ``uname -m``): a
    32-bit userland on a 64-bit ARM kernel runs arm64 binaries too. Emulated: those an enabled QEMU entry runs.
    """
    native = [p.oci for p in native_platforms(parse_platform(device))]
    try:
        kernel = platform_from_machine(machine) if machine else None
    except PlatformError:
        kernel = None
    if kernel is not None:
        native += [p.oci for p in native_platforms(kernel) if p.oci not in native]
    everything = supported_platforms(parse_platform(device), entries, status_enabled)
    return native, [p for p in everything if p not in native]


def can_run(requested: str, device: str, runnable: list) -> bool:
    """Whether a ``device`` whose ``runnable`` platforms (native and emulated) are these can run ``requested``.

    Decided by architecture, the way ``exec format error`` happens: variants are left to the engine. 32-bit ARM
    on a 64-bit ARM device is never refused - most 64-bit ARM CPUs run it natively, only running it tells.
    """
    wanted = parse_platform(requested)
    if wanted.architecture == "arm" and parse_platform(device).architecture == "arm64":
        return True
    return wanted.architecture in {parse_platform(p).architecture for p in runnable}


# ---------------------------------------------------------------------------------------------- ELF


def _le32(*words):
    return b"".join(struct.pack("<I", w) for w in words)


# Per target: the e_flags of its probe (class, byte order and e_machine come from _platform's table).
_PROBE_FLAGS = {
    "x86_64": 0,
    "i386": 0,
    "aarch64": 0,
    "arm": 0x05000000,  # EABI version 5
    "riscv64": 0x5,  # RVC + double-float ABI
    "ppc64le": 0x2,  # ELFv2 ABI
    "s390x": 0,
    "mips64el": 0x80000007,  # MIPS64r2, n64, noreorder/pic/cpic
    "loongarch64": 0x43,  # LP64D, object ABI v1
}


# exit(code) per target; the exit code is the one immediate each sequence takes.
_PROBE_CODE = {
    # mov edi, code; mov eax, 60 (exit); syscall
    "x86_64": lambda c: b"\xbf" + struct.pack("<I", c) + b"\xb8\x3c\x00\x00\x00\x0f\x05",
    # mov ebx, code; mov eax, 1 (exit); int 0x80
    "i386": lambda c: b"\xbb" + struct.pack("<I", c) + b"\xb8\x01\x00\x00\x00\xcd\x80",
    # movz x0, #code; movz x8, #93 (exit); svc #0
    "aarch64": lambda c: _le32(0xD2800000 | (c << 5), 0xD2800000 | (93 << 5) | 8, 0xD4000001),
    # mov r0, #code; mov r7, #1 (exit); svc #0 (EABI)
    "arm": lambda c: _le32(0xE3A00000 | c, 0xE3A07001, 0xEF000000),
    # addi a0, zero, code; addi a7, zero, 93 (exit); ecall
    "riscv64": lambda c: _le32((c << 20) | (10 << 7) | 0x13, (93 << 20) | (17 << 7) | 0x13, 0x00000073),
    # li r3, code; li r0, 1 (exit); sc
    "ppc64le": lambda c: _le32(0x38600000 | c, 0x38000001, 0x44000002),
    # lghi %r2, code; svc 1 (exit)
    "s390x": lambda c: b"\xa7\x29" + struct.pack(">H", c) + b"\x0a\x01",
    # li a0, code; li v0, 5058 (n64 exit); syscall
    "mips64el": lambda c: _le32(0x24040000 | c, 0x24020000 | 5058, 0x0000000C),
    # addi.w a0, zero, code; addi.w a7, zero, 93 (exit); syscall 0
    "loongarch64": lambda c: _le32(0x02800000 | (c << 10) | 4, 0x02800000 | (93 << 10) | 11, 0x002B0000),
}


# exit(argv[0][0]) per target: the first byte of the program's argv[0], read from the initial stack
# (argc at the stack pointer, then the argv pointers), so the exit code tells whether the emulator handed
# the program the argv[0] it was started with (binfmt flag P) or the file's path (no P).
_ARGV0_CODE = {
    # mov rsi, [rsp+8]; movzx edi, byte [rsi]; mov eax, 60 (exit); syscall
    "x86_64": b"\x48\x8b\x74\x24\x08\x0f\xb6\x3e\xb8\x3c\x00\x00\x00\x0f\x05",
    # mov esi, [esp+4]; movzx ebx, byte [esi]; mov eax, 1 (exit); int 0x80
    "i386": b"\x8b\x74\x24\x04\x0f\xb6\x1e\xb8\x01\x00\x00\x00\xcd\x80",
    # ldr x1, [sp, #8]; ldrb w0, [x1]; movz x8, #93 (exit); svc #0
    "aarch64": _le32(0xF94007E1, 0x39400020, 0xD2800000 | (93 << 5) | 8, 0xD4000001),
    # ldr r1, [sp, #4]; ldrb r0, [r1]; mov r7, #1 (exit); svc #0
    "arm": _le32(0xE59D1004, 0xE5D10000, 0xE3A07001, 0xEF000000),
    # ld a1, 8(sp); lbu a0, 0(a1); addi a7, zero, 93 (exit); ecall
    "riscv64": _le32(0x00813583, 0x0005C503, (93 << 20) | (17 << 7) | 0x13, 0x00000073),
    # ld r4, 8(r1); lbz r3, 0(r4); li r0, 1 (exit); sc
    "ppc64le": _le32(0xE8810008, 0x88640000, 0x38000001, 0x44000002),
    # lg %r1, 8(%r15); llgc %r2, 0(%r1); svc 1 (exit)
    "s390x": b"\xe3\x10\xf0\x08\x00\x04\xe3\x20\x10\x00\x00\x90\x0a\x01",
    # ld a1, 8(sp); lbu a0, 0(a1); li v0, 5058 (n64 exit); syscall
    "mips64el": _le32(0xDFA50008, 0x90A40000, 0x24020000 | 5058, 0x0000000C),
    # ld.d a1, sp, 8; ld.bu a0, a1, 0; addi.w a7, zero, 93 (exit); syscall 0
    "loongarch64": _le32(0x28C02065, 0x2A0000A4, 0x02800000 | (93 << 10) | 11, 0x002B0000),
}

# The argv[0] the argv[0] probe is started with; its exit code is this string's first byte when argv[0]
# is preserved, and "/" (the first byte of the file's absolute path) when the emulator lost it.
ARGV0_PROBE_NAME = "A-fleet-binfmt-argv0"
ARGV0_PRESERVED = ord(ARGV0_PROBE_NAME[0])
ARGV0_LOST = ord("/")


def argv0_probe_problem(rc: int, flags: str) -> str:
    """What an argv[0] probe's exit code says is wrong with a registration with these flags ("" if nothing)."""
    if rc == ARGV0_PRESERVED:
        return ""
    if rc == ARGV0_LOST and "P" in normalize_flags(flags):
        return (
            "the entry has the P flag but the program still got its file's path as argv[0]: the kernel (5.12 or"
            " newer passes the flag on) or the emulator (QEMU 6.0 or newer reads it) is too old for P; upgrade"
            " them, or register without P and with verify: false, knowing that multi-call programs such as"
            " busybox then fail"
        )
    if rc == ARGV0_LOST:
        return (
            f"the emulator runs, but without the P flag (flags {normalize_flags(flags) or 'none'}) the program gets"
            " its file's path as argv[0] instead of the name it was started with, so multi-call programs such as"
            " busybox fail (`sh -c 'wc -c FILE'` exits 126 in a busybox image); add P to flags (the default is"
            " PCF), or set verify: false to keep this registration"
        )
    return f"the {ARGV0_PROBE_NAME} probe exited {rc}, expected {ARGV0_PRESERVED} (the first byte of its argv[0])"


def build_probe(target: str, code: int = PROBE_EXIT_CODE) -> bytes:
    """A minimal static ELF executable for a QEMU target that calls exit(code) (0 <= code < 128)."""
    if not 0 <= code < 128:
        raise BinfmtError(f"probe exit code must be 0..127, got {code}")
    if target not in _PROBE_FLAGS:
        raise BinfmtError(f"no ELF probe for QEMU target {target!r}; known: {', '.join(sorted(_PROBE_FLAGS))}")
    return _elf(target, _PROBE_CODE[target](code))


def build_argv0_probe(target: str) -> bytes:
    """A minimal static ELF executable that exits with the first byte of its argv[0].

    Multi-call programs (busybox, coreutils' single binary) choose what to do from argv[0]; under an
    emulator registered without binfmt's P flag they receive the file's path instead and break. Started as
    :data:`ARGV0_PROBE_NAME` from an absolute path, the probe exits :data:`ARGV0_PRESERVED` when argv[0]
    reaches the program and :data:`ARGV0_LOST` when it does not.
    """
    if target not in _ARGV0_CODE:
        raise BinfmtError(f"no ELF probe for QEMU target {target!r}; known: {', '.join(sorted(_ARGV0_CODE))}")
    return _elf(target, _ARGV0_CODE[target])


def _elf(target: str, text: bytes) -> bytes:
    """One PT_LOAD segment holding the ELF header, the program header and ``text``, entry at ``text``."""
    bits, order, machine = elf_identity(platform_from_qemu_target(target))
    flags = _PROBE_FLAGS[target]
    base = 0x400000
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "<" else 2, 1, 0]) + b"\x00" * 8
    if bits == 64:
        ehsize, phsize = 64, 56
        entry = base + ehsize + phsize
        size = ehsize + phsize + len(text)
        header = ident + struct.pack(
            order + "HHIQQQIHHHHHH", 2, machine, 1, entry, ehsize, 0, flags, ehsize, phsize, 1, 0, 0, 0
        )
        phdr = struct.pack(order + "IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x10000)
    else:
        ehsize, phsize = 52, 32
        entry = base + ehsize + phsize
        size = ehsize + phsize + len(text)
        header = ident + struct.pack(
            order + "HHIIIIIHHHHHH", 2, machine, 1, entry, ehsize, 0, flags, ehsize, phsize, 1, 0, 0, 0
        )
        phdr = struct.pack(order + "IIIIIIII", 1, 0, base, base, size, size, 5, 0x10000)
    return header + phdr + text


# ---------------------------------------------------------------------------------------------- host I/O


def package_hint(target: str, os_release: str = "") -> str:
    """Which package provides the static emulator, from /etc/os-release text."""
    ids = set()
    for line in os_release.splitlines():
        if line.startswith(("ID=", "ID_LIKE=")):
            ids.update(line.split("=", 1)[1].strip().strip('"').lower().split())
    fedora = f"qemu-user-static-{QEMU_TABLE[target].fedora_package}"
    if ids & {"debian", "ubuntu"}:
        return "the package qemu-user-static (apt-get install qemu-user-static)"
    if ids & {"fedora", "rhel", "centos"}:
        return f"the package {fedora} (dnf install {fedora})"
    return f"qemu-user-static (Debian/Ubuntu) or {fedora} (Fedora)"


def find_emulator(target: str, dirs) -> str:
    """The static ``qemu-<target>-static`` (or static ``qemu-<target>``) in ``dirs``; BinfmtError if none."""
    dynamic = []
    for directory in dirs:
        for base in (f"qemu-{target}-static", f"qemu-{target}"):
            path = os.path.join(directory, base)
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                continue
            with open(path, "rb") as handle:
                head = handle.read(65536)
            header = parse_elf_header(head)
            if header is not None and header["static"] is not False:
                return path
            dynamic.append(path)
    os_release = ""
    if os.path.isfile("/etc/os-release"):
        with open("/etc/os-release") as handle:
            os_release = handle.read()
    found = f" ({', '.join(dynamic)} is dynamically linked, which fails inside containers)" if dynamic else ""
    raise BinfmtError(
        f"no static QEMU emulator qemu-{target}-static in {', '.join(dirs)}{found}: install"
        f" {package_hint(target, os_release)}, or set emulator_path to the directory that holds it"
    )


class BinfmtMisc:
    """The kernel side: /proc/sys/fs/binfmt_misc. ``run_command`` is AnsibleModule.run_command."""

    def __init__(self, run_command, root: str = PROC_ROOT):
        self.run_command = run_command
        self.root = root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def mounted(self) -> bool:
        return os.path.exists(self._path("register"))

    def in_kernel(self) -> bool:
        """binfmt_misc is built in or loaded (listed in /proc/filesystems)."""
        try:
            with open("/proc/filesystems") as handle:
                return any(line.split()[-1:] == ["binfmt_misc"] for line in handle)
        except OSError:
            return False

    def mount(self) -> None:
        if not self.in_kernel():
            self.run_command(["modprobe", "binfmt_misc"])
        if not self.in_kernel():
            raise BinfmtError(
                "binfmt_misc is unavailable in this kernel (not in /proc/filesystems and `modprobe binfmt_misc`"
                " failed): use a kernel built with CONFIG_BINFMT_MISC, or load the module on the host"
                " (containers cannot)"
            )
        if not os.path.isdir(self.root):
            raise BinfmtError(f"{self.root} does not exist: is /proc mounted?")
        rc, _out, err = self.run_command(["mount", "-t", "binfmt_misc", "binfmt_misc", self.root])
        if rc != 0 or not self.mounted():
            raise BinfmtError(
                f"cannot mount binfmt_misc on {self.root}: {err.strip()}; in a container, run privileged"
                " or mount it on the host"
            )

    def status_enabled(self) -> bool:
        try:
            with open(self._path("status")) as handle:
                return parse_status(handle.read())
        except OSError:
            return False

    def entries(self) -> dict:
        out = {}
        if not self.mounted():
            return out
        for name in sorted(os.listdir(self.root)):
            if name in ("register", "status"):
                continue
            try:
                with open(self._path(name)) as handle:
                    out[name] = parse_entry(name, handle.read())
            except OSError:
                continue  # removed while listing
        return out

    def _write(self, name: str, data: str) -> None:
        with open(self._path(name), "wb", buffering=0) as handle:
            handle.write(data.encode())

    def register(self, entry: dict) -> None:
        line = render_register_line(entry)
        try:
            self._write("register", line)
        except OSError as exc:
            hint = ""
            if exc.errno == errno.ENOENT:
                hint = f": the interpreter {entry['interpreter']} does not exist"
            elif exc.errno == errno.EEXIST:
                hint = f": an entry named {entry['name']} exists already"
            raise BinfmtError(f"the kernel refused to register {line!r}: {exc.strerror}{hint}") from exc

    def remove(self, name: str) -> None:
        try:
            self._write(name, "-1")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BinfmtError(f"cannot remove binfmt_misc entry {name}: {exc.strerror}") from exc

    def enable(self, name: str) -> None:
        try:
            self._write(name, "1")
        except OSError as exc:
            raise BinfmtError(f"cannot enable binfmt_misc entry {name}: {exc.strerror}") from exc

    def enable_all(self) -> None:
        self._write("status", "1")


def gather(kernel: BinfmtMisc, host) -> dict:
    """What binfmt_misc holds now (the result of ``binfmt_info``): entries with their platforms, what a ``host``
    (a Platform) runs natively and emulated."""
    mounted = kernel.mounted()
    status = kernel.status_enabled() if mounted else False
    entries = kernel.entries()
    listed = []
    for name in sorted(entries):
        entry = dict(entries[name])
        target = target_of(entry)
        entry["platform"] = platform_from_qemu_target(target).oci if target else ""
        listed.append(entry)
    emulated = []
    for target in emulated_targets(entries, status):
        emulated.extend(p.oci for p in emulated_platforms(target))
    supported = supported_platforms(host, entries, status)
    return {
        "changed": False,
        "mounted": mounted,
        "status_enabled": status,
        "host_platform": host.oci,
        "entries": listed,
        "emulated": emulated,
        "supported": supported,
    }


def systemd_binfmt_present() -> bool:
    return any(os.path.exists(p) for p in SYSTEMD_BINFMT)


def persisted_files(persist_dir: str, prefix: str) -> list:
    """Existing ``<persist_dir>/<prefix>*.conf`` files."""
    return sorted(glob.glob(os.path.join(glob.escape(persist_dir), glob.escape(prefix) + "*.conf")))
