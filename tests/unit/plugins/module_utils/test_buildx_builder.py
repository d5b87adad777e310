"""Unit tests for _buildx_builder: the plan from a stored builder (captured) to the wanted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx_builder as bb

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
    wanted = bb.desired_nodes(captured_params(), STORED)
    assert wanted[0]["name"] == "fleet-multi0"
    # the first node has --debug; asking without it changes that node, and pi5 holds the builder meanwhile,
    # then goes back behind it: the first node stays first
    steps = bb.plan("fleet-multi", "docker-container", wanted, STORED)
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
    steps = bb.plan("b", "remote", wanted_nodes, stored_builder)
    assert [f"{a} {n['name']}" for a, n, _why in steps] == expected_actions
    assert simulate(stored, steps) == wanted
    assert bb.plan("b", "remote", wanted_nodes, {"driver": "remote", "nodes": wanted_nodes}) == []


def test_same_settings_plan_nothing():
    stored = json.loads(json.dumps(STORED))
    stored["nodes"][0]["buildkitd_flags"] = ["--allow-insecure-entitlement=network.host"]
    assert bb.plan("fleet-multi", "docker-container", bb.desired_nodes(captured_params(), stored), stored) == []


def test_plan_adds_a_native_arm_node_and_removes_unlisted_ones():
    stored = json.loads(json.dumps(STORED))
    stored["nodes"][0]["buildkitd_flags"] = []
    p = captured_params()
    p["nodes"] = [p["nodes"][0], {"name": "rpi5", "endpoint": "ssh://pi@rpi5", "platforms": ["linux/arm64"]}]
    steps = bb.plan("fleet-multi", "docker-container", bb.desired_nodes(p, stored), stored)
    assert [(step[0], step[1]["name"]) for step in steps] == [("append", "rpi5"), ("leave", "pi5")]


def test_plan_recreates_on_driver_change_or_when_the_only_node_differs():
    wanted = bb.desired_nodes(params(name="x", endpoint="tcp://h:1", platforms=["arm64"]), None)
    assert [step[0] for step in bb.plan("x", "remote", wanted, None)] == ["create"]
    assert [step[0] for step in bb.plan("x", "remote", wanted, STORED)] == ["rm", "create"]
    single = {"driver": "remote", "nodes": [{**wanted[0], "name": "x0", "platforms": ["linux/arm/v7"]}]}
    steps = bb.plan(
        "x", "remote", bb.desired_nodes(params(name="x", endpoint="tcp://h:1", platforms=["arm64"]), single), single
    )
    assert steps[0][0::2] == ("rm", "node x0: platforms changed")


def test_single_node_form_keeps_the_existing_node_name():
    stored = {"driver": "remote", "nodes": [{"name": "handmade", "endpoint": "tcp://h:1", "platforms": []}]}
    assert bb.desired_nodes(params(name="x", endpoint="tcp://h:1"), stored)[0]["name"] == "handmade"


def test_unspecified_endpoint_is_not_compared():
    stored = STORED["nodes"][1]
    wanted = {**stored, "endpoint": None, "buildkitd_flags": []}
    assert bb.node_differences(wanted, stored, "docker-container") == []


def test_a_context_endpoint_matches_the_address_buildx_stored_for_it():
    stored = {**STORED["nodes"][1], "endpoint": "unix:///var/run/docker.sock"}
    wanted = {**stored, "endpoint": "default", "endpoint_address": "unix:///var/run/docker.sock", "buildkitd_flags": []}
    assert bb.node_differences(wanted, stored, "docker-container") == []
    moved = {**wanted, "endpoint_address": "unix:///var/run/fleet-docker2.sock"}
    assert bb.node_differences(moved, stored, "docker-container") == ["endpoint"]


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
        bb.desired_nodes(params(**kwargs), None)
