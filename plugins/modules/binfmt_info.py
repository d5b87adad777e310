#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: binfmt_info
short_description: Report the kernel's binfmt_misc registrations and the platforms this host can run
version_added: 0.1.0
description:
  - Reads C(/proc/sys/fs/binfmt_misc) and returns every registered entry, whether binfmt_misc is mounted and
    enabled, the platforms emulated through QEMU entries (recognised by QEMU's magic bytes, whatever their
    name), and every platform this host can run.
  - Changes nothing; does not need root. Use M(fleet.multiarch.binfmt) to register emulators.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.info_module
options: {}
attributes:
  platform:
    platforms: posix
    support: full
    description: Linux only.
seealso:
  - module: fleet.multiarch.binfmt
"""

EXAMPLES = r"""
- name: Which platforms can this build host run?
  fleet.multiarch.binfmt_info:
  register: binfmt

- name: Fail early when arm64 emulation is missing
  ansible.builtin.assert:
    that: "'linux/arm64' in binfmt.supported"
    fail_msg: "run fleet.multiarch.binfmt first"
"""

RETURN = r"""
mounted:
  description: Whether binfmt_misc is mounted on /proc/sys/fs/binfmt_misc.
  returned: always
  type: bool
  sample: true
status_enabled:
  description: Whether binfmt_misc is globally enabled (C(/proc/sys/fs/binfmt_misc/status)).
  returned: always
  type: bool
  sample: true
host_platform:
  description: This host's own platform.
  returned: always
  type: str
  sample: linux/amd64
entries:
  description: Every registered entry, QEMU or not, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Entry name.
      type: str
      sample: qemu-aarch64
    enabled:
      description: Whether the entry is enabled.
      type: bool
    interpreter:
      description: The program the kernel runs for matching files.
      type: str
      sample: /usr/bin/qemu-aarch64-static
    flags:
      description: Flags as the kernel prints them (P, O, C, F).
      type: str
      sample: F
    type:
      description: V(magic) or V(extension).
      type: str
    offset:
      description: Offset of the magic in the file.
      type: int
    magic:
      description: Magic bytes as lowercase hex (empty for extension entries).
      type: str
      sample: 7f454c460201010000000000000000000200b700
    mask:
      description: Mask bytes as lowercase hex (empty when the entry has none).
      type: str
      sample: ffffffffffffff00fffffffffffffffffeffffff
    extension:
      description: The file extension of an extension entry.
      type: str
    platform:
      description: The OCI platform a QEMU entry emulates, recognised by QEMU's magic; empty otherwise.
      type: str
      sample: linux/arm64
emulated:
  description: Platforms an enabled entry emulates, in QEMU's table order.
  returned: always
  type: list
  elements: str
  sample: [linux/arm64, linux/arm/v7, linux/arm/v6]
supported:
  description: Platforms this host can run, native first (the shape setup-qemu-action prints).
  returned: always
  type: list
  elements: str
  sample: [linux/amd64, linux/386, linux/arm64, linux/arm/v7, linux/arm/v6]
"""

import platform as pyplatform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import host_platform


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    if pyplatform.system() != "Linux":
        module.fail_json(msg=f"binfmt_misc exists on Linux only; this host runs {pyplatform.system()}")
    try:
        host = host_platform()
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**bf.gather(bf.BinfmtMisc(module.run_command, root=bf.PROC_ROOT), host))


if __name__ == "__main__":
    main()
