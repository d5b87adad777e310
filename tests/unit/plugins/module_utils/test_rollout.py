"""Unit tests for _rollout: options to configuration, what runs, the plan, ports and logs."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _rollout as ro

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

# The State of a running and of an exited container (docker inspect, Engine 20.10), trimmed; _waiter's tests
# read the same fields in more detail.
HEALTHY_STATE = {"Status": "running", "Running": True, "Restarting": False, "ExitCode": 0, "Error": ""}
EXITED_STATE = {"Status": "exited", "Running": False, "ExitCode": 2, "Error": "", "OOMKilled": False}


def params(**extra) -> dict:
    base = {
        "command": None,
        "env": {},
        "ports": [],
        "volumes": [],
        "restart_policy": "unless-stopped",
        "restart_retries": 0,
        "labels": {},
        "memory": None,
        "log_driver": None,
        "log_options": {},
        "network_mode": None,
        "init": False,
    }
    base.update(extra)
    return base


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080:80", {"container": "80/tcp", "host_ip": "", "host_port": "8080"}),
        ("127.0.0.1:8080:80", {"container": "80/tcp", "host_ip": "127.0.0.1", "host_port": "8080"}),
        ("8080:80/udp", {"container": "80/udp", "host_ip": "", "host_port": "8080"}),
        ("80", {"container": "80/tcp", "host_ip": "", "host_port": ""}),
        ("127.0.0.1::80", {"container": "80/tcp", "host_ip": "127.0.0.1", "host_port": ""}),
        ("[::1]:8443:443/tcp", {"container": "443/tcp", "host_ip": "::1", "host_port": "8443"}),
        (8080, {"container": "8080/tcp", "host_ip": "", "host_port": ""}),
    ],
)
def test_parse_port(spec, expected):
    assert ro.parse_port(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("http", "cannot read"),
        ("8080:70000", "outside 1-65535"),
        ("80/icmp", "cannot read"),
    ],
)
def test_parse_port_refuses(spec, message):
    with pytest.raises(ro.RolloutError, match=message):
        ro.parse_port(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/srv/data:/data", "/srv/data:/data:rw"),
        ("appdata:/data:ro", "appdata:/data:ro"),
    ],
)
def test_parse_volume(spec, expected):
    assert ro.parse_volume(spec) == expected


@pytest.mark.parametrize("spec", ["/data", "data:relative", "/a:/b:rx", ":/b"])
def test_parse_volume_refuses(spec):
    with pytest.raises(ro.RolloutError, match="volumes"):
        ro.parse_volume(spec)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64m", 64 * 1024**2),
        ("64M", 64 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("1g", 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("10485760", 10485760),
        (None, None),
        ("", None),
    ],
)
def test_parse_memory(value, expected):
    assert ro.parse_memory(value) == expected


@pytest.mark.parametrize(("value", "message"), [("lots", "cannot read"), ("1m", "minimum of 6 MiB")])
def test_parse_memory_refuses(value, message):
    with pytest.raises(ro.RolloutError, match=message):
        ro.parse_memory(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("httpd -f -p 8080", ["httpd", "-f", "-p", "8080"]),
        ("sh -c 'echo a b'", ["sh", "-c", "echo a b"]),
        (["sh", "-c", "echo a b"], ["sh", "-c", "echo a b"]),
        ([1, 2], ["1", "2"]),
    ],
)
def test_parse_command(value, expected):
    assert ro.parse_command(value) == expected


def test_parse_command_refuses_unclosed_quote():
    with pytest.raises(ro.RolloutError, match="cannot split"):
        ro.parse_command("sh -c 'echo")


def test_desired_config_is_normalised_and_hash_ignores_order():
    one = ro.desired_config(
        params(env={"B": 2, "A": "x"}, ports=["9090:90", "127.0.0.1:8080:80"], volumes=["b:/b", "a:/a:ro"])
    )
    two = ro.desired_config(
        params(env={"A": "x", "B": "2"}, ports=["127.0.0.1:8080:80", "9090:90/tcp"], volumes=["a:/a:ro", "b:/b:rw"])
    )
    assert one == two
    assert ro.config_hash(one) == ro.config_hash(two)
    assert list(one["env"]) == ["A", "B"]
    assert one["env"]["B"] == "2"
    assert one["restart_policy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}


@pytest.mark.parametrize(
    "change",
    [
        {"env": {"A": "y"}},
        {"ports": ["8081:80"]},
        {"command": ["sh"]},
        {"memory": "64m"},
        {"restart_policy": "always"},
        {"labels": {"team": "a"}},
        {"log_driver": "local"},
        {"log_options": {"max-size": "1m"}},
        {"network_mode": "host"},
        {"init": True},
        {"volumes": ["/a:/a"]},
    ],
)
def test_every_option_changes_the_hash(change):
    base = ro.config_hash(ro.desired_config(params(env={"A": "x"})))
    assert ro.config_hash(ro.desired_config(params(**{"env": {"A": "x"}, **change}))) != base


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"env": {"DEBUG": True}}, "boolean; quote it"),
        ({"env": {"A=B": "x"}}, "not a valid variable name"),
        ({"env": {"A": {"nested": 1}}}, "must be a string"),
        ({"labels": {"io.fleet-multiarch.digest": "x"}}, "belong to the module"),
        ({"restart_policy": "sometimes"}, "not one of"),
        ({"restart_retries": 3}, "on-failure only"),
    ],
)
def test_desired_config_refuses(extra, message):
    with pytest.raises(ro.RolloutError, match=message):
        ro.desired_config(params(**extra))


def test_create_kwargs():
    config = ro.desired_config(
        params(
            command="httpd -f",
            env={"A": "1"},
            ports=["8080:80", "127.0.0.1:8081:80", "53/udp", "127.0.0.1::9000"],
            volumes=["/srv:/data:ro"],
            labels={"team": "fleet"},
            memory="64m",
            log_driver="json-file",
            log_options={"max-size": "1m"},
            network_mode="bridge",
            init=True,
            restart_policy="on-failure",
            restart_retries=3,
        )
    )
    labels = ro.deployment_labels("r:1", DIGEST_A, "linux/arm/v7", "sha256:c", config["restart_policy"])
    kwargs = ro.create_kwargs(config, labels)
    assert kwargs["command"] == ["httpd", "-f"]
    assert kwargs["environment"] == {"A": "1"}
    assert kwargs["ports"] == {
        "80/tcp": [8080, ("127.0.0.1", 8081)],
        "53/udp": None,
        "9000/tcp": [("127.0.0.1",)],
    }
    assert kwargs["volumes"] == ["/srv:/data:ro"]
    assert kwargs["labels"]["team"] == "fleet"
    assert kwargs["labels"][ro.LABEL_DIGEST] == DIGEST_A
    assert kwargs["labels"][ro.LABEL_PLATFORM] == "linux/arm/v7"
    assert json.loads(kwargs["labels"][ro.LABEL_RESTART]) == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert kwargs["mem_limit"] == 64 * 1024**2
    assert kwargs["log_config"] == {"type": "json-file", "config": {"max-size": "1m"}}
    assert kwargs["network_mode"] == "bridge"
    assert kwargs["init"] is True
    assert kwargs["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_create_kwargs_minimal_keeps_image_defaults():
    kwargs = ro.create_kwargs(ro.desired_config(params()), {})
    assert set(kwargs) == {"environment", "labels", "restart_policy"}


# --------------------------------------------------------------------------- what runs, the plan


def attrs_for(digest=DIGEST_A, chash="sha256:c", state=None, labels=None) -> dict:
    base_labels = ro.deployment_labels("r:1", digest, "linux/amd64", chash, {"Name": "always"}) if digest else {}
    return {
        "Id": "f9f60c35ce45",
        "Name": "/app",
        "Config": {"Image": f"r@{digest}", "Labels": {**base_labels, **(labels or {})}},
        "State": state if state is not None else HEALTHY_STATE,
    }


def test_deployment_of_reads_labels():
    dep = ro.deployment_of(attrs_for())
    assert dep["digest"] == DIGEST_A
    assert dep["name"] == "app"
    assert dep["managed"] is True
    assert dep["running"] is True
    assert dep["restart_policy"] == {"Name": "always"}
    assert ro.deployment_of({}) is None


def test_deployment_of_an_unmanaged_container():
    dep = ro.deployment_of(attrs_for(digest="", labels={"maintainer": "x"}))
    assert dep["managed"] is False
    assert dep["digest"] == ""
    assert dep["restart_policy"] is None


@pytest.mark.parametrize(
    ("current", "digest", "chash", "action"),
    [
        (None, DIGEST_A, "sha256:c", "create"),
        (attrs_for(), DIGEST_A, "sha256:c", "none"),
        (attrs_for(state=EXITED_STATE), DIGEST_A, "sha256:c", "start"),
        (attrs_for(), DIGEST_B, "sha256:c", "replace"),
        (attrs_for(), DIGEST_A, "sha256:d", "replace"),
        (attrs_for(digest=""), DIGEST_A, "sha256:c", "replace"),
    ],
)
def test_plan(current, digest, chash, action):
    assert ro.plan(ro.deployment_of(current) if current else None, digest, chash) == action


def test_diff_view():
    assert ro.diff_view(None) == {}
    view = ro.diff_view(ro.deployment_of(attrs_for()))
    assert view == {"reference": "r:1", "digest": DIGEST_A, "platform": "linux/amd64", "config_hash": "sha256:c"}
    assert ro.diff_view({"digest": DIGEST_B}, {"env": {}})["config"] == {"env": {}}


def test_no_platform_message_names_platform_and_variants():
    msg = ro.no_platform_message(
        "127.0.0.1:5000/library/debian:bookworm", "linux/arm/v6", ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    )
    assert "has no image for linux/arm/v6" in msg
    assert "the index has linux/amd64, linux/arm64, linux/arm/v7" in msg


def test_names():
    assert ro.previous_name("app") == "app-previous"
    assert ro.next_name("app") == "app-next"
    assert ro.older_name("app") == "app-older"
    assert ro.image_name("127.0.0.1:5000/a", DIGEST_A) == f"127.0.0.1:5000/a@{DIGEST_A}"


def test_log_tail():
    text = "one\n\ntwo  \nthree\nfour\n"
    assert ro.log_tail(text, 2) == ["three", "four"]
    assert ro.log_tail(text, 10) == ["one", "two", "three", "four"]
    assert ro.log_tail("", 5) == []
    assert ro.log_tail(text, 0) == []


# HostConfig.PortBindings of `docker create -p 127.0.0.1:18089:80 -p 18090:81 -p 82 -p 127.0.0.1::83
# -p 18091:84/udp` (docker inspect, Engine 20.10).
PORT_BINDINGS = {
    "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18089"}],
    "81/tcp": [{"HostIp": "", "HostPort": "18090"}],
    "82/tcp": [{"HostIp": "", "HostPort": ""}],
    "83/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    "84/udp": [{"HostIp": "", "HostPort": "18091"}],
}


def test_fixed_host_ports_of_the_options_and_of_a_container_agree():
    config = ro.desired_config({"ports": ["127.0.0.1:18089:80", "18090:81", "82", "127.0.0.1::83", "18091:84/udp"]})
    assert sorted(ro.fixed_host_ports(config)) == ["127.0.0.1:18089", "18090", "18091"]
    assert ro.bound_host_ports({"HostConfig": {"PortBindings": PORT_BINDINGS}}) == ["127.0.0.1:18089", "18090", "18091"]


def test_no_fixed_host_port_is_no_conflict():
    assert ro.fixed_host_ports(ro.desired_config({"ports": ["80", "127.0.0.1::81"], "network_mode": "host"})) == []
    assert ro.bound_host_ports({"HostConfig": {"PortBindings": None}}) == []
    assert ro.bound_host_ports({}) == []
    assert ro.start_first_conflict([], "the new container") == ""


def test_start_first_conflict_names_the_ports_and_the_ways_out():
    message = ro.start_first_conflict(["127.0.0.1:18089", "18090"], "the new container")
    assert "the new container publishes the fixed host port(s) 127.0.0.1:18089, 18090" in message
    assert "SO_REUSEPORT" in message
    assert "update_order stop-first" in message


def test_image_bytes_is_what_a_pull_downloads():
    manifest = {"config": {"size": 1500}, "layers": [{"size": 1_500_000}, {"size": 50_331_648}]}
    assert ro.image_bytes(manifest) == 51_833_148
    assert ro.image_bytes(None) == 0
    assert (ro.megabytes(51_833_148), ro.megabytes(150_000)) == ("52 MB", "0.1 MB")


def test_not_deployed_message_without_free_space_figures():
    message = ro.not_deployed_message(
        "pulling x failed: no space left on device",
        running="app (sha256:9) still runs",
        no_space={"device": "pi-1", "path": "", "free": None, "needed": 0},
    )
    assert message == (
        "pulling x failed: no space left on device: the disk of pi-1 is full. Free space in the engine's data root on"
        " the device (for example `docker image prune` removes the images no container uses) and run again. Nothing"
        " was stopped or replaced: app (sha256:9) still runs"
    )
