"""Unit tests for buildx_builder_info: selection of builders from captured `buildx ls --format json`."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.modules import buildx_builder_info as mod

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "buildx"
BUILDERS = bx.parse_ls_json((FIXTURES / "ls.json").read_text())


def test_select_all_marks_current():
    builders, missing = mod.select(BUILDERS, None, "fleet-remote")
    assert len(builders) == 5
    assert [b["name"] for b in builders if b["current"]] == ["fleet-remote"]
    assert missing == []


def test_select_by_name_reports_missing():
    builders, missing = mod.select(BUILDERS, ["fleet-c2", "nosuch"], "default")
    assert [(b["name"], b["driver"], b["current"]) for b in builders] == [("fleet-c2", "docker", False)]
    assert missing == ["nosuch"]
