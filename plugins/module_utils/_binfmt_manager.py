# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Registering QEMU emulators in binfmt_misc (the ``binfmt`` module): plan, apply, persist, verify.

:class:`BinfmtManager` works on a :class:`~._binfmt.BinfmtMisc` (the kernel side) with the pure planning of
``_binfmt``; the files it writes go through ``AnsibleModule.atomic_move`` and the probes it runs through
``AnsibleModule.run_command``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    container_machines,
    native_platforms,
    parse_platform,
    platform_from_qemu_target,
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

    def __init__(self, module, kernel: bf.BinfmtMisc, host):
        """Check every option (flags, platforms, root unless in check mode) before anything is touched."""
        self.module = module
        self.kernel = kernel
        self.host = host
        self.params = module.params
        self.check = module.check_mode
        bf.normalize_flags(self.params["flags"])
        self.targets, skipped, self.every = resolve_targets(self.params["platforms"], host)
        if os.geteuid() != 0 and not self.check:
            raise bf.BinfmtError("registering binfmt_misc entries needs root: run the task with become: true")
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
        self.result["skipped_platforms"] = skipped
        self.diff = []

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

    def run(self) -> None:
        targets, every = self.targets, self.every
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
        self.diff.insert(0, self.entries_diff(current, after, touched))
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
            self.diff.append(
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
