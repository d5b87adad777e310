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

import os
import platform as pyplatform
import shutil
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    container_machines,
    host_platform,
    native_platforms,
    parse_platform,
    platform_from_qemu_target,
)

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


def resolve_targets(specs: list, host) -> tuple:
    """Requested platform spellings -> (QEMU targets in table order, skipped list, all requested)."""
    wanted = set()
    every = False
    for spec in specs:
        if str(spec).strip().lower() == "all":
            every = True
            wanted.update(bf.QEMU_TABLE)
            continue
        plat = parse_platform(spec)
        if plat.os != "linux":
            raise PlatformError(f"binfmt_misc emulates Linux binaries only, not {plat.oci!r}")
        if plat.qemu_target not in bf.QEMU_TABLE:
            raise PlatformError(f"no QEMU user-mode emulator is known for {plat.oci}")
        wanted.add(plat.qemu_target)
    natives = {p.architecture for p in native_platforms(host)}
    targets, skipped = [], []
    for target in bf.QEMU_TABLE:
        if target not in wanted:
            continue
        plat = platform_from_qemu_target(target)
        if plat.architecture in natives:
            if plat.architecture == host.architecture:
                reason = f"native platform of this host ({host.oci}), runs without emulation"
            else:
                reason = f"runs natively on a {host.oci} host, no emulation needed"
            skipped.append(
                {"platform": plat.oci, "target": target, "reason": reason, "machines": container_machines(plat, host)}
            )
            continue
        targets.append(target)
    return targets, skipped, every


def _read(path: str):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class BinfmtManager:
    """Plans and applies the module's changes; the kernel side is a bf.BinfmtMisc."""

    def __init__(self, module: AnsibleModule, kernel: bf.BinfmtMisc, host):
        self.module = module
        self.kernel = kernel
        self.host = host
        self.params = module.params
        self.check = module.check_mode
        self.result = {
            "changed": False,
            "platforms": [],
            "supported": [],
            "skipped_platforms": [],
            "replaced": [],
            "removed": [],
            "persisted": [],
            "verified": [],
            "mounted": False,
        }
        self.diffs = []

    def name(self, target: str) -> str:
        return self.params["name_prefix"] + target

    # ------------------------------------------------------------------ preparation

    def ensure_mounted(self) -> None:
        if self.kernel.mounted():
            return
        self.result["changed"] = True
        self.result["mounted"] = True
        if self.check:
            if not self.kernel.in_kernel() and not os.path.isdir(self.kernel.root):
                raise bf.BinfmtError(
                    "binfmt_misc is unavailable in this kernel: use a kernel built with CONFIG_BINFMT_MISC"
                )
            return
        self.kernel.mount()

    def interpreters(self, targets: list) -> dict:
        dirs = [self.params["emulator_path"]] if self.params["emulator_path"] else list(bf.EMULATOR_DIRS)
        found, errors = {}, []
        for target in targets:
            try:
                found[target] = bf.find_emulator(target, dirs)
            except bf.BinfmtError as exc:
                errors.append(f"{platform_from_qemu_target(target).oci}: {exc}")
        if errors:
            raise bf.BinfmtError("missing QEMU emulators; " + "; ".join(errors))
        return found

    def persist_enabled(self) -> bool:
        if self.params["persist"] is None:
            return bf.systemd_binfmt_present()
        return self.params["persist"]

    # ------------------------------------------------------------------ run

    def run(self, targets: list, every: bool) -> None:
        self.ensure_mounted()
        current = self.kernel.entries()
        if self.params["state"] == "present":
            wanted = self.interpreters(targets)
            flags = bf.normalize_flags(self.params["flags"])
            desired = [bf.desired_entry(t, self.name(t), wanted[t], flags) for t in targets]
            actions, replaced = bf.plan_present(desired, current, self.params["replace_conflicting"])
            files = (
                {
                    os.path.join(self.params["persist_dir"], d["name"] + ".conf"): bf.render_persist_file(d)
                    for d in desired
                }
                if self.persist_enabled()
                else {}
            )
        else:
            names = [self.name(t) for t in targets]
            if every:
                names += [n for n in current if n.startswith(self.params["name_prefix"])]
            actions, replaced = bf.plan_absent(names, current), []
            paths = [os.path.join(self.params["persist_dir"], n + ".conf") for n in names]
            if every:
                paths += bf.persisted_files(self.params["persist_dir"], self.params["name_prefix"])
            files = dict.fromkeys(sorted(set(paths)))
        status_enabled = self.kernel.status_enabled() or not self.kernel.mounted()
        if self.params["state"] == "present" and not status_enabled:
            actions.insert(0, {"action": "enable_all", "name": "status", "entry": None})

        self.result["replaced"] = [
            {
                "name": r["old"]["name"],
                "old_interpreter": r["old"]["interpreter"],
                "old_flags": r["old"]["flags"],
                "new_name": r["new"]["name"],
                "new_interpreter": r["new"]["interpreter"],
                "new_flags": r["new"]["flags"],
            }
            for r in replaced
        ]
        self.result["removed"] = [a["name"] for a in actions if a["action"] == "remove"]
        if actions:
            self.result["changed"] = True
        touched = {a["name"] for a in actions if a["entry"] is not None} | {self.name(t) for t in targets}
        predicted = bf.apply_plan(current, [a for a in actions if a["action"] != "enable_all"])
        if not self.check:
            self.apply(actions)
        self.persist(files)
        after = predicted if self.check else self.kernel.entries()
        self.diffs.insert(0, self.entries_diff(current, after, touched))
        present = self.params["state"] == "present"
        self.report(targets, after, (status_enabled or present) if self.check else self.kernel.status_enabled())
        if self.params["state"] == "present" and self.params["verify"]:
            changed_names = {a["name"] for a in actions}
            self.verify([t for t in targets if not self.check or self.name(t) not in changed_names], flags)

    def apply(self, actions: list) -> None:
        for act in actions:
            if act["action"] == "enable_all":
                self.kernel.enable_all()
            elif act["action"] == "remove":
                self.kernel.remove(act["name"])
            elif act["action"] == "register":
                self.kernel.register(act["entry"])
            elif act["action"] == "enable":
                self.kernel.enable(act["name"])

    def persist(self, files: dict) -> None:
        """Write (content) or remove (None) binfmt.d files."""
        for path, content in files.items():
            before = _read(path)
            if before == content:
                continue
            if content is None:
                action = "removed"
                if not self.check:
                    os.unlink(path)
            else:
                action = "written"
                if not self.check:
                    self.write_file(path, content)
            self.result["changed"] = True
            self.result["persisted"].append({"path": path, "action": action})
            self.diffs.append(
                {"before": before or "", "after": content or "", "before_header": path, "after_header": path}
            )

    def write_file(self, path: str, content: str) -> None:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fleet-binfmt-")
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        self.module.atomic_move(tmp, path)

    @staticmethod
    def entries_diff(before: dict, after: dict, names: set) -> dict:
        def text(entries):
            return "".join(bf.describe(entries[n]) + "\n" for n in sorted(names) if n in entries)

        return {
            "before": text(before),
            "after": text(after),
            "before_header": bf.PROC_ROOT,
            "after_header": bf.PROC_ROOT,
        }

    def report(self, targets: list, entries: dict, status_enabled: bool) -> None:
        for target in targets:
            entry = entries.get(self.name(target))
            self.result["platforms"].append(
                {
                    "name": self.name(target),
                    "platform": platform_from_qemu_target(target).oci,
                    "machines": container_machines(platform_from_qemu_target(target), self.host),
                    "target": target,
                    "registered": entry is not None,
                    "enabled": bool(entry and entry["enabled"]),
                    "interpreter": entry["interpreter"] if entry else "",
                    "flags": entry["flags"] if entry else "",
                }
            )
        self.result["supported"] = bf.supported_platforms(self.host, entries, status_enabled)

    def verify(self, targets: list, flags: str) -> None:
        """Run the argv[0] probe of each target through the kernel; raise BinfmtError naming each failure."""
        if not targets:
            return
        workdir = tempfile.mkdtemp(prefix="fleet-binfmt-verify-")
        failures = {}  # problem -> platforms, so one cause shared by several platforms is said once
        try:
            for target in targets:
                plat = platform_from_qemu_target(target).oci
                path = os.path.join(workdir, f"probe-{target}")
                with open(path, "wb") as handle:
                    handle.write(bf.build_argv0_probe(target))
                os.chmod(path, 0o700)
                try:
                    rc, _out, err = self.module.run_command(
                        [bf.ARGV0_PROBE_NAME], executable=path, handle_exceptions=False
                    )
                except OSError as exc:
                    problem = (
                        f"executing a foreign binary failed: {exc.strerror} (no working binfmt_misc handler; is"
                        f" {workdir} on a noexec file system?)"
                    )
                else:
                    problem = bf.argv0_probe_problem(rc, flags)
                    if problem and err.strip():
                        problem += f" ({err.strip()})"
                if problem:
                    failures.setdefault(problem, []).append(plat)
                else:
                    self.result["verified"].append(plat)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if failures:
            raise bf.BinfmtError(
                "emulation does not work as registered for "
                + "; for ".join(f"{', '.join(plats)}: {problem}" for problem, plats in failures.items())
                + ". Check the emulator with `qemu-<target>-static --version` and the entry in "
                + bf.PROC_ROOT
            )


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if pyplatform.system() != "Linux":
        module.fail_json(msg=f"binfmt_misc exists on Linux only; this host runs {pyplatform.system()}")
    try:
        bf.normalize_flags(module.params["flags"])
        host = host_platform()
        targets, skipped, every = resolve_targets(module.params["platforms"], host)
    except (PlatformError, bf.BinfmtError) as exc:
        module.fail_json(msg=str(exc))
    if os.geteuid() != 0 and not module.check_mode:
        module.fail_json(msg="registering binfmt_misc entries needs root: run the task with become: true")
    manager = BinfmtManager(module, bf.BinfmtMisc(module.run_command, root=bf.PROC_ROOT), host)
    manager.result["skipped_platforms"] = skipped
    try:
        manager.run(targets, every)
    except bf.BinfmtError as exc:
        module.fail_json(msg=str(exc), **manager.result)
    except Exception as exc:  # report anything unexpected with its traceback
        module.fail_json(msg=f"unexpected error: {exc}", exception=traceback.format_exc(), **manager.result)
    module.exit_json(diff=manager.diffs, **manager.result)


if __name__ == "__main__":
    main()
