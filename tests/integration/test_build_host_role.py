# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build_host role's contract: every variable documented with its real default, the playbook parses, the
smoke test names a platform that does not run.

The role itself runs end to end in the molecule scenario ``extensions/molecule/build_host`` (a Debian
bookworm system container with systemd and one without): converge, idempotence, a three-platform build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from .helpers import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "build_host"


def _load(path: Path):
    return yaml.safe_load(path.read_text())


def test_every_variable_is_documented_with_its_default():
    defaults = _load(ROLE / "defaults" / "main.yml")
    options = _load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert name.startswith("build_host_"), name
        assert options[name].get("description"), f"{name} has no description"
        assert options[name]["default"] == value, f"{name}: spec default differs from defaults/main.yml"


def test_internal_variables_are_marked():
    internal = _load(ROLE / "vars" / "main.yml")
    assert all(name.startswith("build_host__") for name in internal)


def test_playbook_syntax():
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(ansible_playbook), "--syntax-check", "-i", "localhost,", str(ROOT / "playbooks" / "build_hosts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_smoke_test_names_the_platform_that_does_not_run(tmp_path):
    """The role's smoke test on this host's engine: arm64 runs; riscv64 (not in the busybox image) fails by name."""
    playbook = tmp_path / "smoke.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Smoke test of the build_host role",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {
                        "build_host_smoke_image": "127.0.0.1:5000/library/busybox:latest",
                        # what fleet.multiarch.binfmt returned (its shape): amd64 native, arm64 and riscv64 emulated
                        "build_host_binfmt": {
                            "skipped_platforms": [{"platform": "linux/amd64"}],
                            "platforms": [{"platform": "linux/arm64"}, {"platform": "linux/riscv64"}],
                        },
                    },
                    "tasks": [
                        {
                            "name": "Run the role's smoke test",
                            "ansible.builtin.include_role": {
                                "name": "fleet.multiarch.build_host",
                                "tasks_from": "smoke",
                            },
                        }
                    ],
                }
            ]
        )
    )
    result = run_playbook(playbook, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Smoke test failed for linux/riscv64" in out, out
    assert "Smoke test failed for linux/arm64" not in out and "Smoke test failed for linux/amd64" not in out, out
