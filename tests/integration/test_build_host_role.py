# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build_host role's contract: every variable documented with its real default, the playbook parses.

The role itself runs end to end in the molecule scenario ``extensions/molecule/build_host`` (a Debian
bookworm system container with systemd and one without): converge, idempotence, a three-platform build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

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
