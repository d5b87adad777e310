"""buildx_builder and buildx_builder_info against the two real engines of the test environment.

Every test works in a temporary DOCKER_CONFIG (module option docker_config) holding its own docker contexts,
so the user's contexts and builders are untouched. The docker-container builders are real buildx builders
whose BuildKit image cannot be pulled here: they are created and inspected, and bootstrap must fail naming
the image.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from .helpers import run, run_module

BUILDKIT_IMAGE = "127.0.0.1:5000/fleet-test/buildkit:absent"  # the test registry does not have it
CONFIG = '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def docker_config(testenv, tmp_path) -> Path:
    """A DOCKER_CONFIG with one docker context per real engine: fleet-classic and fleet-containerd."""
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    for name, engine in testenv["engines"].items():
        run(["docker", "context", "create", f"fleet-{name}", "--docker", f"host={engine['docker_host']}"], env=env)
    return config


def builder(config: Path, check_mode=False, diff=False, **args) -> dict:
    return run_module(
        "fleet.multiarch.buildx_builder", {"docker_config": str(config), **args}, check_mode=check_mode, diff=diff
    )


def info(config: Path, **args) -> dict:
    return run_module("fleet.multiarch.buildx_builder_info", {"docker_config": str(config), **args})


def buildx(config: Path, *args) -> str:
    return run(["docker", "buildx", *args], env={**os.environ, "DOCKER_CONFIG": str(config)}).stdout


@pytest.mark.parametrize(
    ("engine", "reported"),
    [
        ("classic", {"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"}),
        ("containerd", {"linux/amd64", "linux/arm64", "linux/riscv64"}),
    ],
)
def test_docker_driver_builder_is_the_engine_context(docker_config, engine, reported):
    name = f"fleet-{engine}"
    planned = builder(docker_config, check_mode=True, name=name, driver="docker", use=True)
    assert planned["changed"] is True, planned
    assert planned["commands"] == [f"docker context use -- {name}"]
    assert "default" in buildx(docker_config, "inspect").splitlines()[0]

    done = builder(docker_config, name=name, driver="docker", use=True)
    assert (done["changed"], done["current"], done["driver"]) == (True, True, "docker"), done
    [node] = done["nodes"]
    assert (node["name"], node["endpoint"], node["status"]) == (name, name, "running")
    assert reported <= set(node["platforms"])  # native plus QEMU-emulated platforms the engine reports
    assert buildx(docker_config, "inspect").splitlines()[0].split()[-1] == name

    assert builder(docker_config, check_mode=True, name=name, driver="docker", use=True)["changed"] is False
    again = builder(docker_config, name=name, driver="docker", use=True)
    assert (again["changed"], again["commands"]) == (False, [])

    listed = info(docker_config, names=[name])
    assert listed["current"] == name
    [entry] = listed["builders"]
    assert (entry["driver"], entry["current"], entry["nodes"][0]["status"]) == ("docker", True, "running")


def test_docker_driver_needs_an_existing_context(docker_config):
    result = builder(docker_config, name="no-such-context", driver="docker")
    assert result.get("failed") is True
    assert "there is no docker context 'no-such-context'" in result["msg"]
    assert "docker context create no-such-context" in result["msg"]
    removed = builder(docker_config, name="fleet-classic", driver="docker", state="absent")
    assert removed.get("failed") is True and "docker context rm fleet-classic" in removed["msg"]


def multi_node_args(**changes) -> dict:
    args = {
        "name": "fleet-multi",
        "driver": "docker-container",
        "driver_opts": {"image": BUILDKIT_IMAGE},
        "buildkitd_config": CONFIG,
        "buildkitd_flags": "--debug",
        "nodes": [
            {
                "endpoint": "fleet-classic",
                "platforms": ["linux/amd64", "linux/386"],
                "driver_opts": {"network": "host"},
            },
            {"name": "arm", "endpoint": "fleet-containerd", "platforms": ["aarch64", "armhf"]},
        ],
    }
    args.update(changes)
    return args


def check_first_node_stays_first(docker_config, args: dict) -> None:
    """The first node changes: it stays first (the other node holds the builder meanwhile, then goes back)."""
    args["nodes"][0]["platforms"] = ["linux/amd64"]
    first = builder(docker_config, **args)
    assert first["changed"] is True, first.get("msg")
    assert [n["name"] for n in first["nodes"]] == ["fleet-multi0", "arm"]
    assert first["nodes"][0]["platforms"] == ["linux/amd64"]
    assert builder(docker_config, **args)["changed"] is False


def test_docker_container_builder_with_a_node_on_each_engine(testenv, docker_config):
    args = multi_node_args()
    stored = docker_config / "buildx" / "instances" / "fleet-multi"
    try:
        planned = builder(docker_config, check_mode=True, diff=True, **args)
        assert planned["changed"] is True, planned
        assert len(planned["commands"]) == 2
        assert [n["fixed_platforms"] for n in planned["nodes"]] == [
            ["linux/amd64", "linux/386"],
            ["linux/arm64", "linux/arm/v7"],
        ]
        assert not stored.exists()

        done = builder(docker_config, diff=True, **args)
        assert done["changed"] is True, done
        nodes = {n["name"]: n for n in done["nodes"]}
        assert set(nodes) == {"fleet-multi0", "arm"}
        assert (nodes["fleet-multi0"]["endpoint"], nodes["arm"]["endpoint"]) == ("fleet-classic", "fleet-containerd")
        assert nodes["fleet-multi0"]["driver_opts"] == {"image": BUILDKIT_IMAGE, "network": "host"}
        assert nodes["arm"]["platforms"] == ["linux/arm64", "linux/arm/v7"]
        assert all(n["status"] == "inactive" for n in nodes.values())
        assert "--debug" in nodes["arm"]["buildkitd_flags"]
        assert done["diff"]["after"]["nodes"][1]["buildkitd_config"]  # buildx stored the configuration

        # buildx rewrote the TOML, the module compares meaning: nothing to do
        assert builder(docker_config, check_mode=True, **args)["changed"] is False
        assert builder(docker_config, **args)["changed"] is False

        # one node's platforms change: only that node is replaced
        args["nodes"][1]["platforms"] = ["linux/arm64"]
        changed = builder(docker_config, **args)
        assert changed["changed"] is True
        assert [c.split(" --node ")[1].split()[0] for c in changed["commands"]] == ["arm", "arm"]
        assert {n["name"]: n["platforms"] for n in changed["nodes"]}["arm"] == ["linux/arm64"]
        assert builder(docker_config, **args)["changed"] is False
        check_first_node_stays_first(docker_config, args)

        # a native arm/v7 machine joins, then leaves
        # (buildx wants one endpoint per node: the same engine by address instead of by context)
        socket_address = testenv["engines"]["containerd"]["docker_host"]
        args["nodes"].append({"name": "pi3", "endpoint": socket_address, "platforms": ["linux/arm/v7"]})
        grown = builder(docker_config, **args)
        assert [c.split(" --node ")[1].split()[0] for c in grown["commands"]] == ["pi3"], grown.get("msg")
        assert "--append" in grown["commands"][0]
        assert [n["name"] for n in grown["nodes"]] == ["fleet-multi0", "arm", "pi3"]
        args["nodes"].pop()
        shrunk = builder(docker_config, **args)
        assert shrunk["commands"] == ["docker buildx create --name fleet-multi --leave --node pi3"]
        assert [n["name"] for n in shrunk["nodes"]] == ["fleet-multi0", "arm"]

        # bootstrap cannot pull the BuildKit image here: a clear failure naming the image and the option
        failed = builder(docker_config, bootstrap=True, **args)
        assert failed.get("failed") is True, failed
        assert f"the BuildKit image {BUILDKIT_IMAGE} could not be pulled" in failed["msg"]
        assert "driver_opts.image" in failed["msg"]
        assert stored.exists()  # the builder stays
        assert "inactive" in buildx(docker_config, "inspect", "fleet-multi")
    finally:
        removed = builder(docker_config, name="fleet-multi", state="absent")
    assert removed["changed"] is True
    assert not stored.exists()
    assert builder(docker_config, name="fleet-multi", state="absent")["changed"] is False


def test_a_node_on_the_default_context_is_idempotent(docker_config):
    """buildx stores the `default` context by its address; asking for `default` again changes nothing."""
    args = {"name": "fleet-on-default", "driver": "docker-container", "endpoint": "default", "platforms": ["amd64"]}
    try:
        assert builder(docker_config, **args)["changed"] is True
        assert builder(docker_config, check_mode=True, **args)["changed"] is False
        assert builder(docker_config, **args)["changed"] is False
    finally:
        builder(docker_config, name="fleet-on-default", state="absent")


def test_default_image_is_named_when_bootstrap_fails(docker_config):
    try:
        result = builder(docker_config, name="fleet-default", endpoint="fleet-classic", bootstrap=True)
        assert result.get("failed") is True, result
        assert "the BuildKit image moby/buildkit:buildx-stable-1 could not be pulled" in result["msg"]
        assert "driver_opts.image" in result["msg"]
    finally:
        builder(docker_config, name="fleet-default", state="absent")


def test_image_build_with_a_builder_that_cannot_boot_says_so(testenv, docker_config):
    """Issue 26: the tutorial's `buildx_builder` with just a name, then image_build with that builder.

    The node never booted (its BuildKit image, moby/buildkit from Docker Hub, cannot be pulled here), so it
    reports no platforms: image_build said "no emulator" although emulation is registered and amd64 native.
    """
    name = "wt-build-tutorial"
    context = Path(__file__).resolve().parent / "contexts" / "uname"
    try:
        created = builder(docker_config, name=name)
        assert created["changed"] is True and created["nodes"][0]["status"] == "inactive", created
        args = {
            "context": str(context),
            "platforms": ["linux/amd64", "linux/arm64", "linux/arm/v7"],
            "tags": [f"{testenv['registry']}/fleet-test/{name}:1.0"],
            "builder": name,
            "docker_config": str(docker_config),
            "force": True,
        }
        result = run_module("fleet.multiarch.image_build", args)
        assert result.get("failed") is True and result["changed"] is False, result
        msg = result["msg"]
        assert f"the builder {name} is inactive (never booted) and could not boot" in msg, msg
        assert "the BuildKit image moby/buildkit:buildx-stable-1 could not be pulled" in msg, msg
        assert "driver_opts" in msg and f"docker buildx inspect --bootstrap {name}" in msg, msg
        assert "bootstrap: true" in msg and "emulator" not in msg, msg
    finally:
        builder(docker_config, name=name, state="absent")


def test_driver_change_recreates_the_builder(docker_config):
    port = free_port()
    try:
        first = builder(docker_config, name="fleet-switch", endpoint="fleet-classic", platforms=["amd64"])
        assert first["changed"] is True
        switched = builder(
            docker_config, name="fleet-switch", driver="remote", endpoint=f"tcp://127.0.0.1:{port}", platforms=["arm64"]
        )
        assert switched["commands"][0] == "docker buildx rm -- fleet-switch", switched
        assert (switched["driver"], switched["nodes"][0]["endpoint"]) == ("remote", f"tcp://127.0.0.1:{port}")
    finally:
        builder(docker_config, name="fleet-switch", state="absent")


def test_remote_nodes_nobody_listens_on_are_inactive(docker_config):
    ports = [free_port(), free_port()]
    args = {
        "name": "fleet-remote",
        "driver": "remote",
        "use": True,
        "nodes": [
            {"name": "pi5", "endpoint": f"tcp://127.0.0.1:{ports[0]}", "platforms": ["linux/arm64"]},
            {"name": "pi3", "endpoint": f"tcp://127.0.0.1:{ports[1]}", "platforms": ["linux/arm/v7", "linux/arm/v6"]},
        ],
    }
    try:
        done = builder(docker_config, **args)
        assert (done["changed"], done["current"]) == (True, True), done
        assert [(n["name"], n["status"], n["platforms"]) for n in done["nodes"]] == [
            ("pi5", "inactive", ["linux/arm64"]),
            ("pi3", "inactive", ["linux/arm/v7", "linux/arm/v6"]),
        ]
        assert builder(docker_config, **args)["changed"] is False

        listed = info(docker_config)
        assert listed["current"] == "fleet-remote"
        names = [b["name"] for b in listed["builders"]]
        assert {"fleet-remote", "fleet-classic", "fleet-containerd", "default"} <= set(names)
        [remote] = [b for b in listed["builders"] if b["name"] == "fleet-remote"]
        assert [n["endpoint"] for n in remote["nodes"]] == [f"tcp://127.0.0.1:{p}" for p in ports]
        assert info(docker_config, names=["fleet-remote", "nosuch"])["missing"] == ["nosuch"]

        failed = builder(docker_config, bootstrap=True, **args)
        assert failed.get("failed") is True
        assert "could not start" in failed["msg"] and "reachable" in failed["msg"]
    finally:
        builder(docker_config, name="fleet-remote", state="absent")
