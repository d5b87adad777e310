#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: device_facts
short_description: Tell what a device is and which OCI platform it must pull
version_added: 0.1.0
description:
  - Returns C(ansible_facts.fleet_device) - the kernel machine (C(uname -m)), the userland architecture and word size,
    the CPU's architecture level, core, and features from C(/proc/cpuinfo), the board model from
    C(/proc/device-tree/model), total memory, the container engine and its architecture, and the OCI platform the
    device must pull (V(linux/arm64), V(linux/arm/v7), V(linux/arm/v6), V(linux/amd64), ...) with a sentence saying why.
  - The userland decides the architecture and word size, not the kernel. It is read from the ELF header of the
    system's own C(/bin/sh) (class, machine, ARM float ABI), else from C(dpkg --print-architecture), else from the
    kernel. A 64-bit kernel under a 32-bit Raspberry Pi OS (C(arm_64bit=1), the default on a Pi 3, 4 and 5 since
    2023) is therefore V(linux/arm/v7), not V(linux/arm64). When a reachable Docker engine reports another
    architecture than the userland, the engine wins, because the engine is the program that pulls.
  - For 32-bit ARM the CPU's architecture level caps the variant at C(min(level, 7)). 32-bit ARM images stop at v7, so
    an ARMv8 CPU running a 32-bit OS is V(linux/arm/v7). A Pi Zero or Pi 1 (ARM1176, ARMv6) is V(linux/arm/v6) and
    never gets a v7 image, even though its Raspberry Pi OS userland is called C(armhf) (Raspberry Pi OS builds
    C(armhf) for ARMv6 with VFP; Debian's C(armhf) needs ARMv7). The level comes from the CPU part number of a known
    core, then the C(model name) line (for example C(ARMv6-compatible processor rev 7) with the suffix v6l), then
    C(CPU architecture), then
    C(uname -m). The kernel prints a C(CPU architecture) of 7 for the ARMv6 ARM1176, so that line alone is not
    trusted.
  - Light on slow devices such as a Pi Zero. It reads a few small files and runs at most
    C(dpkg --print-architecture) and C(docker version --format '{{json .}}'), each under a 10-second C(timeout)
    when coreutils C(timeout) is installed.
  - The CPU serial number is never returned.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.info_module
options: {}
attributes:
  facts:
    support: full
    description: Returns C(ansible_facts.fleet_device).
  platform:
    platforms: posix
    support: full
    description: Linux only (reads C(/proc)); works on any architecture, the build host too.
notes:
  - A board without a device tree (x86 machines, some ARM servers) reports an empty
    RV(ansible_facts.fleet_device.board.model); the platform is still decided.
  - Only the Docker CLI is asked about the engine. Without a C(docker) command
    RV(ansible_facts.fleet_device.engine) is V(null).
seealso:
  - module: fleet.multiarch.binfmt_info
"""

EXAMPLES = r"""
- name: Learn what each device is
  fleet.multiarch.device_facts:

- name: Pull the image for the device's own platform
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} pulls {{ device.platform }}: {{ device.platform_reason }}"
  vars:
    device: "{{ ansible_facts.fleet_device }}"

- name: Group the fleet by platform
  ansible.builtin.group_by:
    key: "platform_{{ ansible_facts.fleet_device.platform | replace('/', '_') }}"

- name: Refuse a v7 image on an ARMv6 Pi Zero
  ansible.builtin.assert:
    that: ansible_facts.fleet_device.platform != 'linux/arm/v6' or image_platform == 'linux/arm/v6'
    fail_msg: "{{ ansible_facts.fleet_device.board.model }} is ARMv6: use a linux/arm/v6 image"
  vars:
    image_platform: linux/arm/v7
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    fleet_device:
      description: What the device is and which OCI platform it pulls.
      returned: always
      type: dict
      contains:
        machine:
          description: The kernel's machine (C(uname -m)).
          type: str
          sample: aarch64
        kernel_bits:
          description: The kernel's word size from the machine; V(null) when unknown.
          type: int
          sample: 64
        userland_arch:
          description: The userland's Debian architecture - from dpkg when installed, else implied by the ELF header.
          type: str
          sample: armhf
        userland_bits:
          description: The userland's word size (ELF class of C(/bin/sh), else from dpkg); V(null) when unknown.
          type: int
          sample: 32
        elf:
          description: The ELF header of the system's own C(/bin/sh) (symlinks resolved); V(null) when unreadable.
          type: dict
          contains:
            path:
              description: The binary that was read.
              type: str
              sample: /usr/bin/dash
            class:
              description: V(ELF32) or V(ELF64).
              type: str
            bits:
              description: 32 or 64.
              type: int
            endian:
              description: V(little) or V(big).
              type: str
            machine:
              description: The ELF machine (V(ARM), V(AArch64), V(x86-64), ...).
              type: str
            machine_code:
              description: The numeric e_machine.
              type: int
              sample: 40
            flags:
              description: e_flags as hex.
              type: str
              sample: "0x05000400"
            float_abi:
              description: For ARM, V(hard) or V(soft) from e_flags; empty otherwise or when not marked.
              type: str
              sample: hard
            eabi:
              description: For ARM, the EABI version from e_flags; V(null) otherwise.
              type: int
              sample: 5
        cpu:
          description: The CPU from C(/proc/cpuinfo).
          type: dict
          contains:
            architecture_level:
              description: The ARM architecture level (5, 6, 7, 8, 9); V(null) on other architectures.
              type: int
              sample: 6
            architecture_level_source:
              description: What the level was read from.
              type: str
              sample: CPU part 0xb76 (ARM1176)
            architecture:
              description: The raw C(CPU architecture) value (7 on an ARMv6 ARM1176).
              type: str
              sample: "7"
            model_name:
              description: The C(model name) line (absent on arm64 kernels, which print none).
              type: str
              sample: ARMv6-compatible processor rev 7 (v6l)
            core:
              description: The core name for a known ARM part number.
              type: str
              sample: Cortex-A72
            implementer:
              description: The C(CPU implementer) code.
              type: str
              sample: "0x41"
            part:
              description: The C(CPU part) code.
              type: str
              sample: "0xd08"
            features:
              description: The first processor's C(Features) (ARM) or C(flags) (x86).
              type: list
              elements: str
              sample: [fp, asimd, evtstrm, crc32, cpuid]
            cores:
              description: The number of processors listed.
              type: int
              sample: 4
        board:
          description: The board. The serial number is deliberately left out.
          type: dict
          contains:
            model:
              description: C(/proc/device-tree/model), else the C(Model) line of C(/proc/cpuinfo); empty when neither.
              type: str
              sample: Raspberry Pi 4 Model B Rev 1.4
            model_source:
              description: Where the model came from.
              type: str
              sample: /proc/device-tree/model
            revision:
              description: The C(Revision) line of C(/proc/cpuinfo) (a Raspberry Pi revision code).
              type: str
              sample: c03114
            hardware:
              description: The C(Hardware) line of C(/proc/cpuinfo) (absent on arm64 kernels).
              type: str
              sample: BCM2835
        memory_mb:
          description: Total memory (C(MemTotal)) in MiB.
          type: int
          sample: 3794
        engine:
          description: The Docker engine; V(null) when no C(docker) command is installed.
          type: dict
          contains:
            name:
              description: V(docker).
              type: str
            version:
              description: The engine's version; empty when it does not answer.
              type: str
              sample: 20.10.24+dfsg1
            api_version:
              description: The engine's API version.
              type: str
              sample: "1.41"
            arch:
              description: The engine's Go architecture (the client's when the engine does not answer).
              type: str
              sample: arm
            os:
              description: The engine's OS.
              type: str
              sample: linux
            client_version:
              description: The docker CLI's version.
              type: str
            reachable:
              description: Whether the engine answered.
              type: bool
        platform:
          description: The OCI platform this device must pull.
          type: str
          sample: linux/arm/v7
        platform_reason:
          description: One sentence saying why.
          type: str
          sample: >-
            64-bit kernel (aarch64) with a 32-bit armhf userland; ARMv8 CPU: 32-bit ARM images stop at v7: linux/arm/v7
        engine_mismatch:
          description:
            - Empty when the Docker engine runs the device's own architecture (or no engine is installed); otherwise
              why not (no engine answers, or the engine's architecture against the platform's and the userland's).
            - A 32-bit OS needs the armhf engine even on a 64-bit kernel.
          type: str
          sample: it is arm64, the platform is linux/arm/v7 and the userland armhf
"""

import platform as pyplatform
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._device import DeviceReader, gather
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    if pyplatform.system() != "Linux":
        module.fail_json(msg=f"device_facts reads /proc and works on Linux only; this host runs {pyplatform.system()}")
    try:
        facts = gather(DeviceReader(module))
    except PlatformError as exc:
        module.fail_json(msg=f"cannot decide this device's OCI platform: {exc}")
    except Exception as exc:
        module.fail_json(msg=f"reading the device failed: {exc}", exception=traceback.format_exc())
    module.exit_json(changed=False, ansible_facts={"fleet_device": facts})


if __name__ == "__main__":
    main()
