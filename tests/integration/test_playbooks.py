"""The collection's playbooks as users call them: `ansible-playbook fleet.multiarch.<name>` from any directory.

The roles behind them run for real in their own tests (test_build_host_role, test_release_role,
test_rollout_role, the molecule scenarios); here each playbook must resolve by its FQCN outside the
repository, parse against the example inventory in docs/examples, and hold the plays, in the order,
that its comment promises.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import VENV_BIN, run

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "docs" / "examples" / "inventory.yml"

PLAYS = {
    "build_hosts": [("build_hosts", "fleet.multiarch.build_host")],
    "release": [("build_hosts[0]", "fleet.multiarch.release")],
    "device": [("devices", "fleet.multiarch.device")],
    "rollout": [("devices", "fleet.multiarch.rollout")],
    "site": [
        ("build_hosts", "fleet.multiarch.build_host"),
        ("build_hosts[0]", "fleet.multiarch.release"),
        ("devices", "fleet.multiarch.device"),
        ("devices", "fleet.multiarch.rollout"),
    ],
}


def list_tasks(name: str, tmp_path: Path) -> list[tuple[str, set[str]]]:
    """(hosts pattern, roles whose tasks it lists) for each play, from `--list-tasks` run in an empty directory."""
    proc = run(
        [str(VENV_BIN / "ansible-playbook"), f"fleet.multiarch.{name}", "-i", str(INVENTORY), "--list-tasks"],
        cwd=tmp_path,
        timeout=300,
    )
    plays: list[tuple[str, set[str]]] = []
    for line in proc.stdout.splitlines():
        play = re.match(r"\s*play #\d+ \(([^)]*)\):", line)
        if play:
            plays.append((play.group(1), set()))
            continue
        task = re.match(r"\s+(fleet\.multiarch\.\w+) : ", line)
        if task and plays:
            plays[-1][1].add(task.group(1))
    return plays


@pytest.mark.parametrize("name", sorted(PLAYS))
def test_playbook_resolves_by_fqcn_and_holds_its_plays(name, tmp_path):
    plays = list_tasks(name, tmp_path)
    assert plays == [(hosts, {role}) for hosts, role in PLAYS[name]], plays


def test_every_playbook_is_checked():
    shipped = {p.stem for p in (ROOT / "playbooks").glob("*.yml")} - {"demo"}  # demo: `make demo`, run by itself
    assert shipped == set(PLAYS)
