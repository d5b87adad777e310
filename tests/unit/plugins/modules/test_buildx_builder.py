"""Unit tests for buildx_builder's main() in check mode (the plan itself: module_utils/test_buildx_builder.py)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.modules import buildx_builder as mod
from tests.unit.plugins.module_utils.test_buildx_builder import FIXTURES, STORED, captured_params


def run_main(args: dict, capsys) -> dict:
    args = {k: v for k, v in args.items() if v is not None}
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


class FakeCLI:
    """Stands in for DockerCLI: the stored and inspected state from fixtures; refuses to change anything."""

    stored = None
    inspected = None
    current = "default"

    def __init__(self, module):
        self.module = module

    def stored_builder(self, name):
        return self.stored

    def inspect(self, name=None, bootstrap=False):
        return self.inspected

    def current_builder(self):
        return self.current

    def context_host(self, name):  # read-only: allowed in check mode; the fixtures' contexts have no address
        return None

    def __getattr__(self, name):
        raise AssertionError(f"check mode must not call DockerCLI.{name}")


@pytest.fixture
def fake_cli(monkeypatch):
    monkeypatch.setattr(bx.DockerCLI, "from_module", classmethod(lambda cls, module: FakeCLI(module)))
    FakeCLI.stored, FakeCLI.inspected, FakeCLI.current = None, None, "default"
    return FakeCLI


def test_main_check_mode_new_builder_reports_commands(fake_cli, capsys):
    args = captured_params(name="new", use=True, _ansible_check_mode=True, _ansible_diff=True)
    result = run_main(args, capsys)
    assert result.get("msg") is None
    assert result["changed"] is True
    assert result["commands"][0].startswith("docker buildx create --name new --node new0 --driver docker-container")
    assert result["commands"][1].startswith("docker buildx create --name new --append --node pi5")
    assert result["commands"][2] == "docker buildx use -- new"
    assert result["current"] is True
    assert [n["fixed_platforms"] for n in result["nodes"]] == [
        ["linux/amd64", "linux/386"],
        ["linux/arm64", "linux/arm/v7"],
    ]
    assert result["diff"]["before"] == {}


def test_main_check_mode_unchanged_builder(fake_cli, capsys):
    fake_cli.stored = STORED
    fake_cli.inspected = bx.parse_inspect((FIXTURES / "inspect-docker-container-multi.txt").read_text())
    fake_cli.current = "fleet-multi"
    nodes = captured_params()["nodes"]
    args = captured_params(use=True, _ansible_check_mode=True)
    args["nodes"] = [{**nodes[0], "name": "fleet-multi0"}, nodes[1]]
    args["buildkitd_flags"] = "--debug"
    # the second node has no --debug in the capture: it differs, the first one does not
    result = run_main(args, capsys)
    assert [c.split(" --node ")[1].split()[0] for c in result["commands"]] == ["pi5", "pi5"]
    assert result["nodes"][1]["status"] == "inactive"


def test_main_docker_driver_rejects_node_options(fake_cli, capsys):
    result = run_main({"name": "lab", "driver": "docker", "platforms": ["arm64"]}, capsys)
    assert result["failed"] is True
    assert "platforms cannot be set with driver: docker" in result["msg"]
