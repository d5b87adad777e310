"""Unit tests for container_rollout's main(): the order of Engine API calls, check mode, rollback, errors.

The engine is an in-memory stand-in with the methods of ``_engine.Engine`` that records every call; the
registry is a stand-in client serving one index (amd64, arm64, arm/v7). The real engine, registry and
emulation are exercised by tests/integration/test_container_rollout.py.
"""

from __future__ import annotations

import json
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg
from ansible_collections.fleet.multiarch.plugins.module_utils import _rollout as ro
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import host_platform
from ansible_collections.fleet.multiarch.plugins.modules import container_rollout as mod

REPO = "127.0.0.1:5000/fleet-test/app"
DIGESTS = {
    "linux/amd64": "sha256:" + "1" * 64,
    "linux/arm64": "sha256:" + "2" * 64,
    "linux/arm/v7": "sha256:" + "3" * 64,
}
OLD_DIGEST = "sha256:" + "9" * 64
PLATFORM_OBJECTS = {
    "linux/amd64": {"os": "linux", "architecture": "amd64"},
    "linux/arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    "linux/arm/v7": {"os": "linux", "architecture": "arm", "variant": "v7"},
}


def index_fetched() -> reg.Fetched:
    data = {
        "schemaVersion": 2,
        "mediaType": reg.OCI_INDEX,
        "manifests": [
            {"mediaType": reg.OCI_MANIFEST, "digest": DIGESTS[p], "size": 500, "platform": PLATFORM_OBJECTS[p]}
            for p in DIGESTS
        ],
    }
    body = json.dumps(data).encode()
    return reg.Fetched(reg.OCI_INDEX, reg.compute_digest(body), body, data)


class FakeRegistryClient:
    def __init__(self, missing=False):
        self.missing = missing

    def get_manifest(self, repository, ref, accept=reg.MANIFEST_ACCEPT):
        if self.missing:
            raise reg.RegistryError(f"{repository}:{ref} not found", status=404)
        return index_fetched()


class FakeContainer:
    def __init__(self, engine, name, image="", labels=None, *, running=False, health="", restart=None):
        self.engine = engine
        self.id = f"id-{name}-{len(engine.calls)}"
        self.name = name
        self.image = image
        self.labels = dict(labels or {})
        self.running = running
        self.health = health
        self.restart = restart or {"Name": "unless-stopped", "MaximumRetryCount": 0}

    @property
    def attrs(self) -> dict:
        state = {"Status": "running" if self.running else "exited", "Running": self.running, "ExitCode": 0}
        if self.health and self.running:
            state["Health"] = {"Status": self.health, "Log": [{"ExitCode": 1, "Output": "wget: 404 Not Found"}]}
        return {
            "Id": self.id,
            "Name": "/" + self.name,
            "Config": {"Image": self.image, "Labels": self.labels},
            "State": state,
            "HostConfig": {"RestartPolicy": dict(self.restart)},
        }


class FakeEngine:
    """The methods of _engine.Engine the module uses, on a dict of containers."""

    def __init__(self):
        self.containers = {}
        self.calls = []
        self.images = set()
        self.health_of_new = "healthy"  # what a created container's HEALTHCHECK reports once started
        self.logs_text = "app starting\nerror: cannot bind\n"

    def add(self, name, digest, chash="sha256:old", *, running=True, health="healthy", reference=f"{REPO}:old"):
        labels = ro.deployment_labels(reference, digest, "linux/amd64", chash, {"Name": "always"})
        container = FakeContainer(
            self, name, f"{REPO}@{digest}", labels, running=running, health=health, restart={"Name": "always"}
        )
        self.containers[name] = container
        return container

    def writes(self) -> list:
        return [c for c in self.calls if c[0] not in ("container", "has_image", "reload", "version_json")]

    # The Engine interface
    def version_json(self):
        self.calls.append(("version_json",))
        return json.dumps({"Client": {}, "Server": {"Version": "20.10.24", "Arch": "amd64", "Os": "linux"}})

    def container(self, name):
        self.calls.append(("container", name))
        return self.containers.get(name)

    def has_image(self, reference):
        self.calls.append(("has_image", reference))
        return reference in self.images

    def pull(self, repository, digest, platform, auth_config=None):
        self.calls.append(("pull", f"{repository}@{digest}", platform))
        self.images.add(f"{repository}@{digest}")

    def create(self, image, name, kwargs):
        self.calls.append(("create", name, image))
        container = FakeContainer(self, name, image, kwargs.get("labels"), health=self.health_of_new)
        self.containers[name] = container
        return container

    def start(self, container):
        self.calls.append(("start", container.name))
        container.running = True

    def stop(self, container, timeout):
        self.calls.append(("stop", container.name, timeout))
        container.running = False

    def rename(self, container, new_name):
        self.calls.append(("rename", container.name, new_name))
        assert new_name not in self.containers, f"name {new_name} is taken"
        del self.containers[container.name]
        container.name = new_name
        self.containers[new_name] = container

    def remove(self, container):
        self.calls.append(("remove", container.name))
        self.containers.pop(container.name, None)

    def set_restart_policy(self, container, policy):
        self.calls.append(("restart_policy", container.name, policy.get("Name")))
        container.restart = {"Name": policy.get("Name") or "no", "MaximumRetryCount": 0}

    def reload(self, container):
        self.calls.append(("reload", container.name))
        return container.attrs if self.containers.get(container.name) is container else {}

    def logs(self, container, lines):
        self.calls.append(("logs", container.name))
        return self.logs_text

    def exec_run(self, container, argv):
        self.calls.append(("exec", container.name, tuple(argv)))
        return 0, ""


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(mod, "Engine", lambda *args, **kwargs: fake)
    monkeypatch.setattr(mod.ClientPool, "get", lambda self, registry: FakeRegistryClient())
    monkeypatch.setattr(mod.time, "sleep", lambda seconds: None)
    return fake


def run_main(capsys, args: dict, check_mode=False, diff=False) -> dict:
    extra = {"_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args({**args, **extra}), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def args_for(tmp_path, **extra) -> dict:
    args = {
        "name": "app",
        "image": f"{REPO}:1.0",
        "platform": "linux/amd64",
        "ports": ["8080:8080"],
        "history_file": str(tmp_path / "history.json"),
        "running_seconds": 0,
    }
    args.update(extra)
    return args


def deployed_hash(tmp_path, **extra) -> str:
    params = {**mod_defaults(), **args_for(tmp_path, **extra)}
    return ro.config_hash(ro.desired_config(params))


def mod_defaults() -> dict:
    return {"env": {}, "volumes": [], "restart_policy": "unless-stopped", "restart_retries": 0, "labels": {}}


def test_first_deployment_pulls_creates_and_starts(engine, capsys, tmp_path):
    result = run_main(capsys, args_for(tmp_path))
    assert result["changed"] is True
    assert result["action"] == "create"
    assert result["digest_after"] == DIGESTS["linux/amd64"]
    assert result["image"] == f"{REPO}@{DIGESTS['linux/amd64']}"
    assert result["health"]["status"] == "healthy"
    assert result["health"]["method"] == "healthcheck"
    assert engine.writes() == [
        ("pull", f"{REPO}@{DIGESTS['linux/amd64']}", "linux/amd64"),
        ("create", "app-next", f"{REPO}@{DIGESTS['linux/amd64']}"),
        ("rename", "app-next", "app"),
        ("start", "app"),
    ]
    labels = engine.containers["app"].labels
    assert labels[ro.LABEL_DIGEST] == DIGESTS["linux/amd64"]
    assert labels[ro.LABEL_REFERENCE] == f"{REPO}:1.0"
    history = json.loads((tmp_path / "history.json").read_text())["deployments"]
    assert [(r["action"], r["result"], r["digest"]) for r in history] == [("create", "ok", DIGESTS["linux/amd64"])]


def test_same_digest_and_configuration_changes_nothing(engine, capsys, tmp_path):
    engine.add("app", DIGESTS["linux/amd64"], chash=deployed_hash(tmp_path))
    result = run_main(capsys, args_for(tmp_path))
    assert result["changed"] is False
    assert result["action"] == "none"
    assert engine.writes() == []
    assert not (tmp_path / "history.json").exists()


@pytest.mark.parametrize(("platform", "digest"), [("linux/arm/v7", "linux/arm/v7"), ("aarch64", "linux/arm64")])
def test_platform_selects_the_index_entry(engine, capsys, tmp_path, platform, digest):
    result = run_main(capsys, args_for(tmp_path, platform=platform))
    assert result["digest_after"] == DIGESTS[digest]
    assert result["platform_match"] == digest
    assert engine.writes()[0] == ("pull", f"{REPO}@{DIGESTS[digest]}", digest)


def test_platform_defaults_to_the_device(engine, capsys, tmp_path):
    args = args_for(tmp_path)
    del args["platform"]
    result = run_main(capsys, args, check_mode=True)
    # This host's own platform, decided from /proc, /bin/sh and the engine as device_facts decides it.
    assert result["platform"] == host_platform().oci
    assert ("version_json",) in engine.calls  # the engine's architecture, through the Engine API


def test_missing_platform_names_it_and_the_variants(engine, capsys, tmp_path):
    result = run_main(capsys, args_for(tmp_path, platform="linux/arm/v6"))
    assert result["failed"] is True
    assert "has no image for linux/arm/v6" in result["msg"]
    assert "the index has linux/amd64, linux/arm64, linux/arm/v7" in result["msg"]
    assert engine.writes() == []


def test_missing_reference(engine, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(mod.ClientPool, "get", lambda self, registry: FakeRegistryClient(missing=True))
    result = run_main(capsys, args_for(tmp_path))
    assert result["failed"] is True
    assert "does not exist in the registry" in result["msg"]


def test_check_mode_reports_the_diff_and_changes_nothing(engine, capsys, tmp_path):
    engine.add("app", OLD_DIGEST)
    result = run_main(capsys, args_for(tmp_path), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["action"] == "replace"
    assert result["diff"]["before"]["digest"] == OLD_DIGEST
    assert result["diff"]["after"]["digest"] == DIGESTS["linux/amd64"]
    assert result["diff"]["after"]["config"]["ports"] == [{"container": "8080/tcp", "host_ip": "", "host_port": "8080"}]
    assert engine.writes() == []


def test_replace_pulls_before_stopping_and_keeps_the_previous(engine, capsys, tmp_path):
    engine.add("app", OLD_DIGEST)
    engine.add("app-previous", "sha256:" + "8" * 64, running=False)
    result = run_main(capsys, args_for(tmp_path, stop_timeout=1))
    assert result["changed"] is True, result.get("msg")
    assert result["digest_before"] == OLD_DIGEST
    assert result["previous"] == {"name": "app-previous", "digest": OLD_DIGEST}
    writes = engine.writes()
    assert writes == [
        ("pull", f"{REPO}@{DIGESTS['linux/amd64']}", "linux/amd64"),
        ("create", "app-next", f"{REPO}@{DIGESTS['linux/amd64']}"),
        ("rename", "app-previous", "app-older"),
        ("rename", "app", "app-previous"),
        ("restart_policy", "app-previous", "no"),
        ("rename", "app-next", "app"),
        ("stop", "app-previous", 1),
        ("start", "app"),
        ("remove", "app-older"),
    ]
    assert engine.containers["app"].running is True
    assert engine.containers["app-previous"].running is False
    history = json.loads((tmp_path / "history.json").read_text())["deployments"]
    assert history[-1]["previous_digest"] == OLD_DIGEST
    assert history[-1]["previous_restart_policy"] == {"Name": "always", "MaximumRetryCount": 0}


def test_unhealthy_new_container_is_rolled_back(engine, capsys, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    older = engine.add("app-previous", "sha256:" + "8" * 64, running=False)
    engine.health_of_new = "unhealthy"
    result = run_main(capsys, args_for(tmp_path, log_lines=1))
    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert result["health"]["status"] == "unhealthy"
    assert result["digest_after"] == OLD_DIGEST
    assert result["logs"] == ["error: cannot bind"]
    assert "error: cannot bind" in result["msg"]
    assert "Rolled back" in result["msg"]
    # The old container serves again under its name, with its restart policy; the one kept before stays kept.
    assert engine.containers["app"] is old
    assert old.running is True
    assert old.restart["Name"] == "always"
    assert engine.containers["app-previous"] is older
    assert "app-next" not in engine.containers
    assert "app-older" not in engine.containers
    history = json.loads((tmp_path / "history.json").read_text())["deployments"]
    assert (history[-1]["result"], history[-1]["health"]) == ("rolled_back", "unhealthy")


def test_failed_first_deployment_leaves_nothing_behind(engine, capsys, tmp_path):
    engine.health_of_new = "unhealthy"
    result = run_main(capsys, args_for(tmp_path))
    assert result["failed"] is True
    assert result["rolled_back"] is False
    assert "no previous container to restore" in result["msg"]
    assert engine.containers == {}


def test_stopped_same_deployment_is_started(engine, capsys, tmp_path):
    engine.add("app", DIGESTS["linux/amd64"], chash=deployed_hash(tmp_path), running=False)
    engine.images.add(f"{REPO}@{DIGESTS['linux/amd64']}")
    result = run_main(capsys, args_for(tmp_path))
    assert result["changed"] is True
    assert result["action"] == "start"
    assert engine.writes() == [("start", "app")]


def test_command_probe_runs_in_the_container(engine, capsys, tmp_path):
    result = run_main(capsys, args_for(tmp_path, health={"command": ["true"]}))
    assert result["health"]["method"] == "command"
    assert ("exec", "app", ("true",)) in engine.calls


def test_rolled_back_on_demand_swaps_and_is_idempotent(engine, capsys, tmp_path):
    current = engine.add("app", DIGESTS["linux/amd64"])
    previous = engine.add("app-previous", OLD_DIGEST, running=False)
    previous.restart = {"Name": "no", "MaximumRetryCount": 0}
    args = {"name": "app", "state": "rolled_back", "history_file": str(tmp_path / "history.json")}

    checked = run_main(capsys, args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert (checked["diff"]["before"]["digest"], checked["diff"]["after"]["digest"]) == (
        DIGESTS["linux/amd64"],
        OLD_DIGEST,
    )
    assert engine.writes() == []

    result = run_main(capsys, args)
    assert result["changed"] is True, result.get("msg")
    assert result["rolled_back"] is True
    assert result["digest_after"] == OLD_DIGEST
    assert engine.containers["app"] is previous
    assert previous.running is True
    assert previous.restart["Name"] == "always"  # from its label
    assert engine.containers["app-previous"] is current
    assert current.running is False
    assert current.restart["Name"] == "no"

    again = run_main(capsys, args)
    assert again["changed"] is False


def test_rolled_back_without_previous_fails(engine, capsys, tmp_path):
    engine.add("app", DIGESTS["linux/amd64"])
    result = run_main(capsys, {"name": "app", "state": "rolled_back", "history_file": str(tmp_path / "h.json")})
    assert result["failed"] is True
    assert "no previous deployment of app is kept" in result["msg"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ports": ["http"]}, "ports: cannot read"),
        ({"env": {"DEBUG": True}}, "quote it"),
        ({"image": "busybox"}, "no registry host"),
        ({"platform": "linux/sparc"}, "sparc"),
    ],
)
def test_bad_options_fail_before_touching_the_engine(engine, capsys, tmp_path, extra, message):
    result = run_main(capsys, args_for(tmp_path, **extra))
    assert result["failed"] is True
    assert message in result["msg"]
    assert engine.writes() == []


def test_state_started_needs_image(engine, capsys, tmp_path):
    args = args_for(tmp_path)
    del args["image"]
    result = run_main(capsys, args)
    assert result["failed"] is True
    assert "image" in result["msg"]


def test_unwritable_history_is_a_warning(engine, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_main(capsys, args_for(tmp_path, history_file=str(blocker / "history.json")))
    assert result["changed"] is True
    # ansible-core 2.19+ reports warnings as structured events
    assert "history could not be written" in json.dumps(result.get("warnings"))


def test_tcp_probe_passes_on_a_listening_port_and_fails_on_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        state, message = mod.Rollout._tcp_probe({"port": port})()
        assert (state, message) == ("pass", f"TCP 127.0.0.1:{port} accepted")
    # the same port, now closed: the connection is refused
    state, message = mod.Rollout._tcp_probe({"host": "127.0.0.1", "port": port})()
    assert state == "fail"
    assert message.startswith(f"TCP 127.0.0.1:{port}: ")


def test_start_first_stops_the_old_container_only_once_the_new_one_is_healthy(engine, capsys, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    engine.add("app-previous", "sha256:" + "8" * 64, running=False)
    result = run_main(capsys, args_for(tmp_path, ports=[], network_mode="host", update_order="start-first"))
    assert result["changed"] is True, result.get("msg")
    writes = engine.writes()
    assert writes[:3] == [
        ("pull", f"{REPO}@{DIGESTS['linux/amd64']}", "linux/amd64"),
        ("create", "app-next", f"{REPO}@{DIGESTS['linux/amd64']}"),
        ("start", "app-next"),  # beside the old one, which still runs
    ]
    assert writes[3:] == [
        ("remove", "app-previous"),
        ("restart_policy", "app", "no"),
        ("rename", "app", "app-previous"),
        ("rename", "app-next", "app"),
        ("stop", "app-previous", 3),
    ]
    assert engine.containers["app-previous"] is old
    assert old.running is False
    assert engine.containers["app"].running is True
    assert result["previous"] == {"name": "app-previous", "digest": OLD_DIGEST}


def test_start_first_failure_leaves_the_old_container_untouched(engine, capsys, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    older = engine.add("app-previous", "sha256:" + "8" * 64, running=False)
    engine.health_of_new = "unhealthy"
    result = run_main(capsys, args_for(tmp_path, ports=[], update_order="start-first", log_lines=1))
    assert result["failed"] is True
    assert result["rolled_back"] is False
    assert result["digest_after"] == OLD_DIGEST
    assert "was not stopped (update_order start-first) and still runs" in result["msg"]
    assert not [w for w in engine.writes() if w[1] in ("app", "app-previous")]
    assert engine.containers == {"app": old, "app-previous": older}
    assert old.running is True


def test_start_first_refuses_a_fixed_host_port_before_anything(engine, capsys, tmp_path):
    engine.add("app", OLD_DIGEST)
    result = run_main(capsys, args_for(tmp_path, update_order="start-first"), check_mode=True)
    assert result["failed"] is True
    assert "publishes the fixed host port(s) 8080" in result["msg"]
    assert engine.writes() == []


def test_start_first_rollback_starts_the_kept_one_first(engine, capsys, tmp_path):
    current = engine.add("app", OLD_DIGEST)
    kept = engine.add("app-previous", "sha256:" + "8" * 64, running=False)
    args = {"name": "app", "state": "rolled_back", "update_order": "start-first"}
    result = run_main(capsys, {**args, "history_file": str(tmp_path / "history.json")})
    assert result["changed"] is True, result.get("msg")
    assert engine.writes() == [
        ("start", "app-previous"),
        ("restart_policy", "app", "no"),
        ("rename", "app", "app-next"),
        ("rename", "app-previous", "app"),
        ("restart_policy", "app", "always"),
        ("stop", "app-next", 3),
        ("rename", "app-next", "app-previous"),
    ]
    assert engine.containers == {"app": kept, "app-previous": current}
    assert kept.running is True
    assert current.running is False
