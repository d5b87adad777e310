"""The collection's metadata agrees with its contents."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_action_group_lists_every_module_and_nothing_else():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert sorted(runtime["action_groups"]["multiarch"]) == modules


def test_galaxy_metadata():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("fleet", "multiarch", "0.1.0")
    # Nothing outside ansible.builtin and this collection is used by the content, so nothing is declared.
    assert not galaxy.get("dependencies")
