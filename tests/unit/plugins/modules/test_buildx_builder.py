"""Unit tests for buildx_builder: the plan from a stored builder to the wanted one, and main() in check mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.modules import buildx_builder as mod

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "buildx"
STORED = bx.parse_instance(json.loads((FIXTURES / "instance-docker-container-multi.json").read_text()))
CONFIG = '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n'
IMAGE = "127.0.0.1:5000/moby/buildkit:buildx-stable-1"


def params(**kwargs) -> dict:
    base = {
        "name": "fleet-multi",
        "state": "present",
        "driver": "docker-container",
        "endpoint": None,
        "platforms": None,
        "nodes": None,
        "driver_opts": None,
        "buildkitd_config": None,
        "buildkitd_flags": None,
        "use": False,
        "bootstrap": False,
    }
    base.update(kwargs)
    return base


def captured_params(**changes) -> dict:
    """The options that describe the captured fleet-multi builder exactly."""
    nodes = [
        {"name": None, "endpoint": "fleet-classic", "platforms": ["amd64", "i386"], "driver_opts": {"network": "host"}},
        {"name": "pi5", "endpoint": "fleet-c2", "platforms": ["aarch64", "armhf"], "driver_opts": None},
    ]
    base = params(nodes=nodes, driver_opts={"image": IMAGE}, buildkitd_config=CONFIG)
    base.update(changes)
    return base


def test_asking_without_a_flag_changes_the_node_that_has_it_and_keeps_the_order():
    wanted = mod.desired_nodes(captured_params(), STORED)
    assert wanted[0]["name"] == "fleet-multi0"
    # the first node has --debug; asking without it changes that node, and pi5 holds the builder meanwhile,
    # then goes back behind it: the first node stays first
    steps = mod.plan("fleet-multi", "docker-container", wanted, STORED)
    assert [(a, n["name"], why) for a, n, why in steps] == [
        ("leave", "fleet-multi0", "buildkitd_flags changed"),
        ("append", "fleet-multi0", "buildkitd_flags changed"),
        ("leave", "pi5", "node order"),
        ("append", "pi5", "node order"),
    ]


def simulate(stored_names: list, steps: list) -> list:
    """The node order after ``steps``, as buildx applies them (append at the end; the last node cannot leave)."""
    order = list(stored_names)
    for action, node, _why in steps:
        if action == "rm":
            order = []
        elif action in ("create", "append"):
            order.append(node["name"])
        else:
            assert len(order) > 1, "buildx cannot remove the last node"
            order.remove(node["name"])
    return order


def node(name: str, platforms=("linux/arm64",)) -> dict:
    return {
        "name": name,
        "endpoint": f"tcp://{name}:1234",
        "platforms": list(platforms),
        "driver_opts": {},
        "buildkitd_flags": [],
        "buildkitd_config": None,
    }


@pytest.mark.parametrize(
    ("stored", "wanted", "changed", "expected_actions"),
    [
        (["a", "b", "c"], ["a", "b", "c"], [], []),
        (["a", "b", "c"], ["a", "c", "b"], [], ["leave c", "leave b", "append c", "append b"]),
        (["a", "b"], ["b", "a"], [], ["leave b", "append b", "leave a", "append a"]),
        (["a", "b", "c"], ["a", "b", "c"], ["b"], ["leave b", "leave c", "append b", "append c"]),
        (["a", "b", "c"], ["a", "b", "c"], ["c"], ["leave c", "append c"]),
        (["a", "x", "b"], ["a", "b"], [], ["leave x"]),
        (["x", "a"], ["n", "a"], [], ["leave x", "append n", "leave a", "append a"]),
        (["a"], ["b", "a"], [], ["append b", "leave a", "append a"]),
    ],
)
def test_plan_converges_to_the_wanted_order(stored, wanted, changed, expected_actions):
    stored_builder = {"driver": "remote", "nodes": [node(n) for n in stored]}
    wanted_nodes = [node(n, ("linux/arm/v7",) if n in changed else ("linux/arm64",)) for n in wanted]
    steps = mod.plan("b", "remote", wanted_nodes, stored_builder)
    assert [f"{a} {n['name']}" for a, n, _why in steps] == expected_actions
    assert simulate(stored, steps) == wanted
    assert mod.plan("b", "remote", wanted_nodes, {"driver": "remote", "nodes": wanted_nodes}) == []


def test_same_settings_plan_nothing():
    stored = json.loads(json.dumps(STORED))
    stored["nodes"][0]["buildkitd_flags"] = ["--allow-insecure-entitlement=network.host"]
    assert mod.plan("fleet-multi", "docker-container", mod.desired_nodes(captured_params(), stored), stored) == []


def test_plan_adds_a_native_arm_node_and_removes_unlisted_ones():
    stored = json.loads(json.dumps(STORED))
    stored["nodes"][0]["buildkitd_flags"] = []
    p = captured_params()
    p["nodes"] = [p["nodes"][0], {"name": "rpi5", "endpoint": "ssh://pi@rpi5", "platforms": ["linux/arm64"]}]
    steps = mod.plan("fleet-multi", "docker-container", mod.desired_nodes(p, stored), stored)
    assert [(step[0], step[1]["name"]) for step in steps] == [("append", "rpi5"), ("leave", "pi5")]


def test_plan_recreates_on_driver_change_or_when_the_only_node_differs():
    wanted = mod.desired_nodes(params(name="x", endpoint="tcp://h:1", platforms=["arm64"]), None)
    assert [step[0] for step in mod.plan("x", "remote", wanted, None)] == ["create"]
    assert [step[0] for step in mod.plan("x", "remote", wanted, STORED)] == ["rm", "create"]
    single = {"driver": "remote", "nodes": [{**wanted[0], "name": "x0", "platforms": ["linux/arm/v7"]}]}
    steps = mod.plan(
        "x", "remote", mod.desired_nodes(params(name="x", endpoint="tcp://h:1", platforms=["arm64"]), single), single
    )
    assert steps[0][0::2] == ("rm", "node x0: platforms changed")


def test_single_node_form_keeps_the_existing_node_name():
    stored = {"driver": "remote", "nodes": [{"name": "handmade", "endpoint": "tcp://h:1", "platforms": []}]}
    assert mod.desired_nodes(params(name="x", endpoint="tcp://h:1"), stored)[0]["name"] == "handmade"


def test_unspecified_endpoint_is_not_compared():
    stored = STORED["nodes"][1]
    wanted = {**stored, "endpoint": None, "buildkitd_flags": []}
    assert mod.node_differences(wanted, stored, "docker-container") == []


def test_a_context_endpoint_matches_the_address_buildx_stored_for_it():
    stored = {**STORED["nodes"][1], "endpoint": "unix:///var/run/docker.sock"}
    wanted = {**stored, "endpoint": "default", "endpoint_address": "unix:///var/run/docker.sock", "buildkitd_flags": []}
    assert mod.node_differences(wanted, stored, "docker-container") == []
    moved = {**wanted, "endpoint_address": "unix:///var/run/fleet-docker2.sock"}
    assert mod.node_differences(moved, stored, "docker-container") == ["endpoint"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": [{"name": "a", "endpoint": "x"}, {"name": "a", "endpoint": "y"}]}, "repeated: a"),
        ({"platforms": ["armv7"], "endpoint": "x"}, "write 'linux/arm/v7'"),
        ({"nodes": [{"name": "a", "endpoint": "x"}, {"name": "b", "endpoint": "x"}]}, "one node per endpoint"),
    ],
)
def test_desired_nodes_rejects(kwargs, message):
    with pytest.raises(bx.BuildxError, match=message):
        mod.desired_nodes(params(**kwargs), None)


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
