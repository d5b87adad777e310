#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: binfmt
short_description: Register QEMU user-mode emulators with binfmt_misc so a host runs foreign binaries
version_added: 0.1.0
description:
  - Registers (or removes) QEMU user-mode emulators in the kernel's C(binfmt_misc) so that this host
    executes binaries of other architectures, for example to build and run C(linux/arm64) and
    C(linux/arm/v7) container images on an x86_64 host. No container image is involved.
  - The magic and mask bytes come from QEMU's own table (C(qemu-binfmt-conf.sh)). Entries are named
    C(qemu-<target>) by default, as QEMU, Debian, Fedora and tonistiigi/binfmt name them, so the module
    converges with registrations those tools made.
  - An existing entry for the same architecture with another interpreter or other flags is replaced, and the
    result says what was replaced.
  - Mounts C(binfmt_misc) when it is not mounted.
  - The host's own architecture is skipped and reported (on linux/amd64 also linux/386, which runs natively).
  - With O(verify), each platform is proven to work by executing a tiny static ELF of that architecture
    directly, through the kernel's binfmt_misc path.
  - Use M(fleet.multiarch.binfmt_info) to only report the registrations.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
options:
  platforms:
    description:
      - The platforms to emulate, in any spelling, for example C(arm64), C(aarch64), C(linux/arm64),
        C(arm), C(linux/arm/v7), C(linux/arm/v6), C(riscv64), C(ppc64le), C(s390x), C(386), C(mips64le),
        C(loong64), or C(all) for every platform QEMU can emulate here.
      - C(linux/arm/v7), C(linux/arm/v6) and C(linux/arm/v5) share one emulator, C(qemu-arm).
      - With O(state=absent) and C(all), every entry whose name starts with O(name_prefix) is removed.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) registers the emulators; V(absent) removes the entries of the named platforms
        (and their O(persist_dir) files).
    type: str
    choices: [present, absent]
    default: present
  flags:
    description:
      - binfmt_misc flags, any of V(P) (preserve argv[0]), V(O) (open binary), V(C) (credentials, implies V(O))
        and V(F) (fix binary). The kernel prints them in the order C(POCF).
      - V(F) makes the kernel open the emulator at registration time, which is what makes emulation work
        inside containers and chroots that do not contain the emulator.
      - V(P) hands the program the argv[0] it was started with instead of its file's path. Multi-call
        programs (busybox, whose shell re-executes itself for each applet) and argv[0]-sensitive ones (a
        login shell started as C(-bash)) need it. It needs Linux 5.12 or newer and QEMU 6.0 or newer;
        O(verify) proves it works.
      - V(C) computes the credentials of an emulated process from the program, not from the emulator, so
        setuid programs such as C(sudo) work in emulated builds. The price is that a setuid-root foreign program
        runs the emulator as root, so a flaw in QEMU becomes a way to root for whoever can run such a
        program on this host. See the Flags section of docs/binfmt.md for the measurements behind the default.
      - The default V(PCF) is what docker/setup-qemu-action registers (C(CF)) plus V(P).
    type: str
    default: PCF
  emulator_path:
    description:
      - Directory holding the static QEMU binaries C(qemu-<target>-static).
      - By default C(/usr/bin), C(/usr/local/bin) and C(/usr/libexec/qemu-user-static) are searched, which
        covers Debian/Ubuntu (package C(qemu-user-static)) and Fedora (packages C(qemu-user-static-<arch>)).
      - Only statically linked emulators are accepted.
    type: path
  persist:
    description:
      - Write one C(<persist_dir>/<name>.conf) file per entry, in the C(:name:type:offset:magic:mask:interpreter:flags)
        format that systemd-binfmt reads at boot, so the registrations come back after a reboot.
      - Defaults to V(true) when systemd-binfmt is installed, V(false) otherwise.
    type: bool
  persist_dir:
    description:
      - The binfmt.d directory the O(persist) files are written to.
    type: path
    default: /etc/binfmt.d
  verify:
    description:
      - Execute a tiny static ELF of each registered platform directly, started with an argv[0] of its own,
        and check that it ran and received that argv[0] (it exits with argv[0]'s first byte).
      - A platform whose emulator does not run, or whose programs lose their argv[0] (no V(P) flag, or V(P)
        on a kernel or QEMU too old for it), fails the task with a message; such a registration breaks
        busybox images. Set O(verify=false) to keep a registration without V(P) anyway.
      - In check mode only platforms that need no change are verified.
    type: bool
    default: true
  name_prefix:
    description:
      - Prefix of the entry names, followed by QEMU's target name (C(qemu-aarch64)).
      - Keep the default to converge with QEMU's, Debian's and tonistiigi's registrations.
    type: str
    default: qemu-
  replace_conflicting:
    description:
      - Also remove enabled entries under other names that catch the same binaries (for example an old
        C(aarch64) entry of binfmt-support), so that the registration made here is the one the kernel uses.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Computes every change and the diff, changes nothing.
  diff_mode:
    support: full
    description: Shows the entries (as register lines) and persist files before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
  platform:
    platforms: posix
    support: full
    description: Linux only; needs root, except in check mode.
requirements:
  - Linux with C(binfmt_misc) (CONFIG_BINFMT_MISC)
  - static QEMU user-mode emulators (Debian/Ubuntu C(qemu-user-static), Fedora C(qemu-user-static-*))
notes:
  - Supports C(check_mode) and C(diff).
seealso:
  - module: fleet.multiarch.binfmt_info
  - name: Kernel support for miscellaneous binary formats
    description: The binfmt_misc documentation.
    link: https://docs.kernel.org/admin-guide/binfmt-misc.html
"""

EXAMPLES = r"""
- name: Let this x86_64 build host run and build ARM images
  fleet.multiarch.binfmt:
    platforms: [linux/arm64, linux/arm/v7]
  become: true

- name: Everything QEMU can emulate, without the credentials flag (no setuid programs in emulated builds)
  fleet.multiarch.binfmt:
    platforms: all
    flags: PF
  become: true

- name: Emulators from a custom directory, without boot persistence
  fleet.multiarch.binfmt:
    platforms: [riscv64]
    emulator_path: /opt/qemu/bin
    persist: false
  become: true

- name: Remove every qemu-* registration and its binfmt.d file
  fleet.multiarch.binfmt:
    platforms: all
    state: absent
  become: true
"""

RETURN = r"""
platforms:
  description: One item per requested, non-skipped emulator, as the kernel has it after the task.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The binfmt_misc entry name.
      type: str
      sample: qemu-aarch64
    platform:
      description: The OCI platform the emulator runs.
      type: str
      sample: linux/arm64
    machines:
      description:
        - What C(uname -m) may print in a container of RV(platforms[].platform) on this host (the emulated CPU
          can differ from the image's variant, C(qemu-arm) is an ARMv7 CPU).
      type: list
      elements: str
      sample: [aarch64]
    target:
      description: QEMU's target name.
      type: str
      sample: aarch64
    registered:
      description: Whether the entry exists.
      type: bool
    enabled:
      description: Whether the entry is enabled.
      type: bool
    interpreter:
      description: The emulator the kernel runs.
      type: str
      sample: /usr/bin/qemu-aarch64-static
    flags:
      description: The entry's flags as the kernel prints them.
      type: str
      sample: POCF
  sample:
    - name: qemu-aarch64
      platform: linux/arm64
      machines: [aarch64]
      target: aarch64
      registered: true
      enabled: true
      interpreter: /usr/bin/qemu-aarch64-static
      flags: POCF
supported:
  description:
    - The platforms this host can now run, native first, in the shape setup-qemu-action prints.
  returned: always
  type: list
  elements: str
  sample: [linux/amd64, linux/386, linux/arm64, linux/arm/v7, linux/arm/v6]
skipped_platforms:
  description:
    - Requested platforms that were not registered, and why (the host runs them natively).
    - Named C(skipped_platforms) because Ansible reserves C(skipped) for skipped tasks.
  returned: always
  type: list
  elements: dict
  contains:
    platform:
      description: The OCI platform.
      type: str
    target:
      description: QEMU's target name for it.
      type: str
    reason:
      description: Why it was not registered.
      type: str
    machines:
      description: What C(uname -m) may print in a container of that platform on this host.
      type: list
      elements: str
  sample:
    - platform: linux/amd64
      target: x86_64
      reason: native platform of this host, runs without emulation
      machines: [x86_64]
replaced:
  description: Existing entries that were (or in check mode would be) replaced, with the new entry's settings.
  returned: always
  type: list
  elements: dict
  sample:
    - name: qemu-aarch64
      old_interpreter: /usr/libexec/qemu-binfmt/aarch64-binfmt-P
      old_flags: PF
      new_name: qemu-aarch64
      new_interpreter: /usr/bin/qemu-aarch64-static
      new_flags: POCF
removed:
  description: Names of the entries that were removed (also those replaced under another name).
  returned: always
  type: list
  elements: str
  sample: [qemu-aarch64]
persisted:
  description: binfmt.d files written or removed.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/binfmt.d/qemu-aarch64.conf
      action: written
verified:
  description: Platforms whose probe binary ran and received the argv[0] it was started with.
  returned: always
  type: list
  elements: str
  sample: [linux/arm64, linux/arm/v7]
mounted:
  description: Whether the task mounted binfmt_misc.
  returned: always
  type: bool
"""

import platform as pyplatform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._binfmt_manager import BinfmtManager
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_manager
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, host_platform

ARGUMENT_SPEC = dict(
    platforms=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    flags=dict(type="str", default="PCF"),
    emulator_path=dict(type="path"),
    persist=dict(type="bool"),
    persist_dir=dict(type="path", default=bf.PERSIST_DIR),
    verify=dict(type="bool", default=True),
    name_prefix=dict(type="str", default="qemu-"),
    replace_conflicting=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if pyplatform.system() != "Linux":
        module.fail_json(msg=f"binfmt_misc exists on Linux only; this host runs {pyplatform.system()}")
    kernel = bf.BinfmtMisc(module.run_command, root=bf.PROC_ROOT)
    run_manager(module, lambda: BinfmtManager(module, kernel, host_platform()), (PlatformError, bf.BinfmtError))


if __name__ == "__main__":
    main()
