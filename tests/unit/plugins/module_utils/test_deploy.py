"""Unit tests for _deploy: the rollout manager's Engine API calls, check mode, rollback and its one failure path.

The fakes (engine, registry client, module) are in tests/unit/plugins/conftest.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _deploy as dp
from ansible_collections.fleet.multiarch.plugins.module_utils import _engine
from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg
from ansible_collections.fleet.multiarch.plugins.module_utils import _rollout as ro
from ansible_collections.fleet.multiarch.plugins.module_utils._engine import EngineError
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import host_platform
from tests.unit.plugins.conftest import (
    DIGESTS,
    KEPT_DIGEST,
    OLD_DIGEST,
    REPO,
    FakeRegistryClient,
    PowerCut,
    binfmt_entries,
)

NEW_IMAGE = f"{REPO}@{DIGESTS['linux/amd64']}"


@pytest.fixture
def task(engine, make_module, capsys):
    """``task(args, check_mode=False, diff=False)``: what the task reports, through ``_deploy.run`` and the engine."""

    def run_task(args: dict, check_mode=False, diff=False) -> dict:
        with pytest.raises(SystemExit):
            dp.run(make_module(args, check_mode, diff), lambda: engine)
        return json.loads(capsys.readouterr().out)

    return run_task


def history(tmp_path) -> list:
    return json.loads((tmp_path / "history.json").read_text())["deployments"]


def deployed_hash(args: dict) -> str:
    defaults = {"env": {}, "volumes": [], "restart_policy": "unless-stopped", "restart_retries": 0, "labels": {}}
    return ro.config_hash(ro.desired_config({**defaults, **args}))


def rollback_args(tmp_path, **extra) -> dict:
    return {"name": "app", "state": "rolled_back", "history_file": str(tmp_path / "history.json"), **extra}


# --------------------------------------------------------------------------- state: started


def test_first_deployment_pulls_creates_and_starts(engine, task, args_for, tmp_path):
    result = task(args_for())
    assert result["changed"] is True
    assert result["action"] == "create"
    assert result["digest_after"] == DIGESTS["linux/amd64"]
    assert result["image"] == NEW_IMAGE
    assert result["health"]["status"] == "healthy"
    assert result["health"]["method"] == "healthcheck"
    assert engine.writes() == [
        ("pull", NEW_IMAGE, "linux/amd64"),
        ("create", "app-next", NEW_IMAGE),
        ("rename", "app-next", "app"),
        ("start", "app"),
    ]
    labels = engine.containers["app"].labels
    assert labels[ro.LABEL_DIGEST] == DIGESTS["linux/amd64"]
    assert labels[ro.LABEL_REFERENCE] == f"{REPO}:1.0"
    assert [(r["action"], r["result"], r["digest"]) for r in history(tmp_path)] == [
        ("create", "ok", DIGESTS["linux/amd64"])
    ]


def test_same_digest_and_configuration_changes_nothing(engine, task, args_for, tmp_path):
    engine.add("app", DIGESTS["linux/amd64"], chash=deployed_hash(args_for()))
    result = task(args_for())
    assert result["changed"] is False
    assert result["action"] == "none"
    assert engine.writes() == []
    assert not (tmp_path / "history.json").exists()


@pytest.mark.parametrize(("platform", "digest"), [("linux/arm/v7", "linux/arm/v7"), ("aarch64", "linux/arm64")])
def test_platform_selects_the_index_entry(engine, task, args_for, platform, digest):
    result = task(args_for(platform=platform))
    assert result["digest_after"] == DIGESTS[digest]
    assert result["platform_match"] == digest
    assert engine.writes()[0] == ("pull", f"{REPO}@{DIGESTS[digest]}", digest)


def test_platform_defaults_to_the_device(engine, task, args_for):
    args = args_for()
    del args["platform"]
    result = task(args, check_mode=True)
    # This host's own platform, decided from /proc, /bin/sh and the engine as device_facts decides it.
    assert result["platform"] == host_platform().oci
    assert ("version_json",) in engine.calls  # the engine's architecture, through the Engine API


def test_check_mode_reports_the_diff_and_changes_nothing(engine, task, args_for):
    engine.add("app", OLD_DIGEST)
    result = task(args_for(), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["action"] == "replace"
    assert result["diff"]["before"]["digest"] == OLD_DIGEST
    assert result["diff"]["after"]["digest"] == DIGESTS["linux/amd64"]
    assert result["diff"]["after"]["config"]["ports"] == [{"container": "8080/tcp", "host_ip": "", "host_port": "8080"}]
    assert engine.writes() == []


def test_stopped_same_deployment_is_started(engine, task, args_for):
    engine.add("app", DIGESTS["linux/amd64"], chash=deployed_hash(args_for()), running=False)
    engine.images.add(NEW_IMAGE)
    result = task(args_for())
    assert result["changed"] is True
    assert result["action"] == "start"
    assert engine.writes() == [("start", "app")]


def test_stopped_same_deployment_that_fails_is_stopped_again(engine, task, args_for, tmp_path):
    stopped = engine.add("app", DIGESTS["linux/amd64"], chash=deployed_hash(args_for()), running=False)
    stopped.health = "unhealthy"
    engine.images.add(NEW_IMAGE)
    result = task(args_for())
    assert result["failed"] is True
    assert result["msg"].startswith(f"starting app from {REPO}:1.0 ")
    assert result["digest_after"] == ""
    assert engine.writes() == [("start", "app"), ("stop", "app", 3)]
    assert (history(tmp_path)[-1]["action"], history(tmp_path)[-1]["result"]) == ("start", "failed")


def test_command_probe_runs_in_the_container(engine, task, args_for):
    result = task(args_for(health={"command": ["true"]}))
    assert result["health"]["method"] == "command"
    assert ("exec", "app", ("true",)) in engine.calls


def test_unwritable_history_is_a_warning(engine, task, args_for, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = task(args_for(history_file=str(blocker / "history.json")))
    assert result["changed"] is True
    # ansible-core 2.19+ reports warnings as structured events
    assert "history could not be written" in json.dumps(result.get("warnings"))


# --------------------------------------------------------------------------- the replace path, in both orders

# (update order, what is replaced) -> the Engine API writes of a healthy replacement of "app".
REPLACE_WRITES = {
    ("stop-first", "deploy"): [
        ("pull", NEW_IMAGE, "linux/amd64"),
        ("create", "app-next", NEW_IMAGE),
        ("rename", "app-previous", "app-older"),
        ("rename", "app", "app-previous"),
        ("rename", "app-next", "app"),
        # the outgoing container keeps its restart policy until it stops: a power cut before that, and the
        # engine starts it again at boot
        ("restart_policy", "app-previous", "no"),
        ("stop", "app-previous", 3),
        ("start", "app"),
        ("remove", "app-older"),
    ],
    ("start-first", "deploy"): [
        ("pull", NEW_IMAGE, "linux/amd64"),
        ("create", "app-next", NEW_IMAGE),
        ("start", "app-next"),  # beside the old one, which still runs
        ("remove", "app-previous"),
        ("restart_policy", "app", "no"),
        ("rename", "app", "app-previous"),
        ("rename", "app-next", "app"),
        ("stop", "app-previous", 3),
    ],
    ("stop-first", "rollback"): [
        ("rename", "app", "app-next"),
        ("rename", "app-previous", "app"),
        ("restart_policy", "app", "always"),
        ("restart_policy", "app-next", "no"),
        ("stop", "app-next", 3),
        ("start", "app"),
        ("rename", "app-next", "app-previous"),
    ],
    ("start-first", "rollback"): [
        ("start", "app-previous"),  # beside the current one, which still runs
        ("restart_policy", "app", "no"),
        ("rename", "app", "app-next"),
        ("rename", "app-previous", "app"),
        ("restart_policy", "app", "always"),
        ("stop", "app-next", 3),
        ("rename", "app-next", "app-previous"),
    ],
}


@pytest.mark.parametrize("case", list(REPLACE_WRITES), ids="-".join)
def test_replace_order_of_operations(engine, task, args_for, tmp_path, case):
    order, kind = case
    current = engine.add("app", OLD_DIGEST)
    kept = engine.add("app-previous", KEPT_DIGEST, running=False)
    if kind == "deploy":
        result = task(args_for(ports=[], update_order=order))
        incoming = engine.containers["app"]
        assert incoming not in (current, kept)
        assert "app-older" not in engine.containers  # the container kept before is dropped once all is well
        expected_previous = {"name": "app-previous", "digest": OLD_DIGEST}
    else:
        result = task(rollback_args(tmp_path, update_order=order))
        incoming = kept
        assert engine.containers == {"app": kept, "app-previous": current}
        assert kept.restart["Name"] == "always"  # from its label
        expected_previous = {"name": "app-previous", "digest": OLD_DIGEST}
    assert result["changed"] is True, result.get("msg")
    assert engine.writes() == REPLACE_WRITES[order, kind]
    assert result["container"] == {"name": "app", "id": incoming.id}
    assert result["rolled_back"] is (kind == "rollback")
    assert result["previous"] == expected_previous
    assert incoming.running is True
    assert engine.containers["app-previous"] is current
    assert current.running is False
    assert current.restart["Name"] == "no"  # a reboot does not start it beside the one that runs
    entry = history(tmp_path)[-1]
    assert (entry["result"], entry["previous_digest"]) == ("ok", OLD_DIGEST)
    if kind == "deploy":
        assert entry["previous_restart_policy"] == {"Name": "always", "MaximumRetryCount": 0}
    else:
        assert "previous_restart_policy" not in entry


def test_unhealthy_new_container_is_rolled_back(engine, task, args_for, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    older = engine.add("app-previous", KEPT_DIGEST, running=False)
    engine.health_of_new = "unhealthy"
    result = task(args_for(log_lines=1))
    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert result["health"]["status"] == "unhealthy"
    assert result["digest_after"] == OLD_DIGEST
    assert result["logs"] == ["error: cannot bind"]
    assert "error: cannot bind" in result["msg"]
    assert f"Rolled back: the previous container ({OLD_DIGEST}) runs again and is healthy." in result["msg"]
    # The old container serves again under its name, with its restart policy; the one kept before stays kept.
    assert engine.containers["app"] is old
    assert old.running is True
    assert old.restart["Name"] == "always"
    assert engine.containers["app-previous"] is older
    assert "app-next" not in engine.containers
    assert "app-older" not in engine.containers
    assert result["container"] == {"name": "app", "id": old.id}
    assert result["previous"] == {"name": "app-previous", "digest": KEPT_DIGEST}
    assert (history(tmp_path)[-1]["result"], history(tmp_path)[-1]["health"]) == ("rolled_back", "unhealthy")


def test_failed_first_deployment_leaves_nothing_behind(engine, task, args_for, tmp_path):
    engine.health_of_new = "unhealthy"
    result = task(args_for())
    assert result["failed"] is True
    assert result["rolled_back"] is False
    assert "no previous container to restore" in result["msg"]
    assert result["msg"].endswith("Last 2 log lines of the new container:\napp starting\nerror: cannot bind")
    assert result["container"] == {"name": "app", "id": ""}
    assert engine.containers == {}
    assert history(tmp_path)[-1]["result"] == "failed"


def test_start_first_failure_leaves_the_old_container_untouched(engine, task, args_for, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    older = engine.add("app-previous", KEPT_DIGEST, running=False)
    engine.health_of_new = "unhealthy"
    result = task(args_for(ports=[], update_order="start-first", log_lines=1))
    assert result["failed"] is True
    assert result["rolled_back"] is False
    assert result["digest_after"] == OLD_DIGEST
    assert "was not stopped (update_order start-first) and still runs" in result["msg"]
    assert not [w for w in engine.writes() if w[1] in ("app", "app-previous")]
    assert engine.containers == {"app": old, "app-previous": older}
    assert old.running is True
    entry = history(tmp_path)[-1]
    assert entry["result"] == "failed"
    assert "previous_restart_policy" not in entry  # the old container was not handed over


def test_start_first_refuses_a_fixed_host_port_before_anything(engine, task, args_for):
    engine.add("app", OLD_DIGEST)
    result = task(args_for(update_order="start-first"), check_mode=True)
    assert result["failed"] is True
    assert "publishes the fixed host port(s) 8080" in result["msg"]
    assert engine.writes() == []


# --------------------------------------------------------------------------- what the device can run, what it expects


def no_registry(self, registry):
    raise AssertionError("the registry must not be asked")


@pytest.fixture
def registry_untouched(engine, monkeypatch):
    monkeypatch.setattr(reg.ClientPool, "get", no_registry)


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_platform_the_device_cannot_run_is_refused_before_anything(engine, task, args_for, monkeypatch, check_mode):
    """A linux/amd64 device emulating arm64 and arm only: linux/riscv64 would crash-loop on exec format error."""
    engine.add("app", OLD_DIGEST)
    monkeypatch.setattr(reg.ClientPool, "get", no_registry)
    result = task(args_for(platform="riscv64"), check_mode=check_mode)
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["msg"].startswith(
        "this device cannot run linux/riscv64: it runs linux/amd64, linux/386 natively and linux/arm64, linux/arm/v7,"
        " linux/arm/v6 under QEMU emulation (binfmt_misc), and no emulator for linux/riscv64 is registered"
    )
    assert "Drop the forced platform (the device's own is linux/amd64)" in result["msg"]
    assert "fleet.multiarch.binfmt (platforms: [linux/riscv64])" in result["msg"]
    assert result["digest_before"] == result["digest_after"] == OLD_DIGEST  # what the device still runs
    assert engine.writes() == []


def test_emulation_switched_off_globally_counts_as_none(engine, task, args_for, monkeypatch):
    monkeypatch.setattr(dp.EngineDeviceReader, "binfmt", lambda self: (binfmt_entries("aarch64", "arm"), False))
    result = task(args_for(platform="linux/arm/v7"))
    assert result["failed"] is True
    assert "it runs linux/amd64, linux/386 natively, and emulates nothing" in result["msg"]
    assert engine.writes() == []


@pytest.mark.parametrize(("platform", "digest"), [("linux/arm/v7", "linux/arm/v7"), ("linux/386", None)])
def test_a_platform_the_device_emulates_or_runs_natively_is_deployed(engine, task, args_for, platform, digest):
    result = task(args_for(platform=platform))
    if digest:
        assert not result.get("failed"), result.get("msg")
        assert result["digest_after"] == DIGESTS[digest]
    else:  # not refused as unrunnable: the index simply has no linux/386 image
        assert "has no image for linux/386" in result["msg"]


def test_an_engine_elsewhere_is_not_checked_for_emulation(engine, task, args_for, monkeypatch):
    """Its emulators cannot be read from here: the platform is left to that engine."""
    monkeypatch.setattr(dp.EngineDeviceReader, "binfmt", lambda self: pytest.fail("binfmt read for a tcp engine"))
    result = task(args_for(platform="linux/arm64", docker_host="tcp://192.0.2.1:2375"), check_mode=True)
    assert not result.get("failed"), result.get("msg")
    assert result["digest_after"] == DIGESTS["linux/arm64"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_digest_the_release_does_not_expect_is_refused(engine, task, args_for, check_mode):
    engine.add("app", OLD_DIGEST)
    expected = {**DIGESTS, "linux/amd64": "sha256:" + "a" * 64}
    result = task(args_for(expected_digests=expected), check_mode=check_mode)
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["msg"] == (
        f"{REPO}:1.0 holds {DIGESTS['linux/amd64']} for linux/amd64, but the release expects sha256:{'a' * 64}."
        " The tag was re-pointed since the release. Nothing was pulled or stopped. Run the release again to record"
        " what the tag holds now, or roll out the release by its digest (repository@index digest, as the rollout"
        " role does with a release record)"
    )
    assert result["digest_before"] == result["digest_after"] == OLD_DIGEST  # what the device still runs
    assert engine.writes() == []


def test_a_platform_the_release_does_not_list_is_refused(engine, task, args_for):
    result = task(args_for(platform="arm64", expected_digests={"linux/amd64": DIGESTS["linux/amd64"]}))
    assert result["failed"] is True
    assert "the release has no image for linux/arm64 (it lists linux/amd64)" in result["msg"]
    assert engine.writes() == []


def test_a_record_that_disagrees_with_its_own_index_is_refused(engine, task, args_for):
    args = args_for(image=f"{REPO}@sha256:{'c' * 64}", expected_digests={"linux/amd64": "sha256:" + "a" * 64})
    result = task(args)
    assert result["failed"] is True
    assert "The release record does not match the index it names" in result["msg"]
    assert engine.writes() == []


def test_the_expected_digest_is_deployed(engine, task, args_for):
    """Platforms in any spelling, as a record may hold them; the matching digest deploys as without the option."""
    expected = {"amd64": DIGESTS["linux/amd64"], "aarch64": DIGESTS["linux/arm64"]}
    result = task(args_for(expected_digests=expected))
    assert not result.get("failed"), result.get("msg")
    assert result["digest_after"] == DIGESTS["linux/amd64"]
    assert engine.writes()[0] == ("pull", NEW_IMAGE, "linux/amd64")


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        ({"linux/amd64": "latest"}, "expected_digests: linux/amd64 maps to 'latest', not a digest"),
        ({"linux/sparc": DIGESTS["linux/amd64"]}, "expected_digests: "),
    ],
)
@pytest.mark.usefixtures("registry_untouched")
def test_bad_expected_digests_fail_before_the_registry(engine, task, args_for, expected, message):
    result = task(args_for(expected_digests=expected))
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert engine.writes() == []


# --------------------------------------------------------------------------- state: rolled_back


def test_rolled_back_on_demand_swaps_and_is_idempotent(engine, task, tmp_path):
    current = engine.add("app", DIGESTS["linux/amd64"])
    previous = engine.add("app-previous", OLD_DIGEST, running=False)
    previous.restart = {"Name": "no", "MaximumRetryCount": 0}
    args = rollback_args(tmp_path)

    checked = task(args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert (checked["diff"]["before"]["digest"], checked["diff"]["after"]["digest"]) == (
        DIGESTS["linux/amd64"],
        OLD_DIGEST,
    )
    assert engine.writes() == []

    result = task(args)
    assert result["changed"] is True, result.get("msg")
    assert result["rolled_back"] is True
    assert result["digest_after"] == OLD_DIGEST
    assert engine.containers["app"] is previous
    assert previous.running is True
    assert previous.restart["Name"] == "always"  # from its label
    assert engine.containers["app-previous"] is current
    assert current.running is False
    assert current.restart["Name"] == "no"

    again = task(args)
    assert again["changed"] is False
    assert again["action"] == "none"


def test_rolled_back_without_previous_fails(engine, task, tmp_path):
    engine.add("app", DIGESTS["linux/amd64"])
    result = task(rollback_args(tmp_path))
    assert result["failed"] is True
    assert "no previous deployment of app is kept" in result["msg"]


def test_stop_first_rollback_to_an_unhealthy_container_fails_and_keeps_what_ran(engine, task, tmp_path):
    current = engine.add("app", DIGESTS["linux/amd64"])
    kept = engine.add("app-previous", OLD_DIGEST, running=False, health="unhealthy")
    result = task(rollback_args(tmp_path, log_lines=1))
    assert result["failed"] is True
    assert result["msg"] == (
        f"rolling app back to {OLD_DIGEST} failed: the container is unhealthy"
        f" ({result['health']['detail']}). app-previous holds what ran before. Last 1 log lines:\nerror: cannot bind"
    )
    assert result["rolled_back"] is True
    assert result["container"] == {"name": "app", "id": kept.id}
    assert result["previous"] == {"name": "app-previous", "digest": DIGESTS["linux/amd64"]}
    assert result["logs"] == ["error: cannot bind"]
    assert engine.containers == {"app": kept, "app-previous": current}
    assert current.running is False
    assert (history(tmp_path)[-1]["action"], history(tmp_path)[-1]["result"]) == ("rolled_back", "failed")


def test_start_first_rollback_to_an_unhealthy_container_stops_it_again(engine, task, tmp_path):
    current = engine.add("app", DIGESTS["linux/amd64"])
    kept = engine.add("app-previous", OLD_DIGEST, running=False, health="unhealthy")
    result = task(rollback_args(tmp_path, update_order="start-first"))
    assert result["failed"] is True
    assert result["msg"].startswith(f"rolling app back to {OLD_DIGEST} failed: app-previous is unhealthy ("), result[
        "msg"
    ]
    assert "and was stopped again; app was not stopped (update_order start-first) and still runs." in result["msg"]
    assert result["rolled_back"] is False
    assert result["digest_after"] == DIGESTS["linux/amd64"]
    assert result["container"] == {"name": "app", "id": current.id}
    assert engine.writes() == [("start", "app-previous"), ("stop", "app-previous", 3)]
    assert engine.containers == {"app": current, "app-previous": kept}
    assert current.running is True
    assert kept.running is False
    assert (history(tmp_path)[-1]["action"], history(tmp_path)[-1]["result"]) == ("rolled_back", "failed")


# --------------------------------------------------------------------------- the one failure path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ports": ["http"]}, "ports: cannot read"),
        ({"env": {"DEBUG": True}}, "quote it"),
        ({"image": "busybox"}, "no registry host"),
        ({"platform": "linux/sparc"}, "sparc"),
        ({"platform": "linux/arm/v6"}, "the index has linux/amd64, linux/arm64, linux/arm/v7"),
    ],
)
def test_bad_options_fail_before_touching_the_engine(engine, task, args_for, extra, message):
    result = task(args_for(**extra))
    assert result["failed"] is True
    assert message in result["msg"]
    assert result["history_file"] == args_for()["history_file"]  # the result so far comes with the failure
    assert engine.writes() == []


def test_missing_reference(engine, task, args_for, monkeypatch):
    monkeypatch.setattr(reg.ClientPool, "get", lambda self, registry: FakeRegistryClient(missing=True))
    result = task(args_for())
    assert result["failed"] is True
    assert "does not exist in the registry" in result["msg"]


def test_steps_raise_rollout_failed_with_the_message(engine, make_module, args_for):
    engine.health_of_new = "unhealthy"
    manager = dp.RolloutManager(make_module(args_for()), engine)
    with pytest.raises(dp.RolloutFailed, match="There was no previous container to restore"):
        manager.run()
    assert manager.result["logs"] == ["app starting", "error: cannot bind"]


def test_the_logs_are_read_before_the_failed_container_goes(engine, task, args_for):
    engine.add("app", OLD_DIGEST)
    engine.health_of_new = "unhealthy"
    task(args_for())
    names = [call for call in engine.calls if call[0] in ("logs", "remove")]
    assert names == [("logs", "app"), ("remove", "app")]


class Boom(RuntimeError):
    pass


def unreachable():
    raise EngineError("cannot reach the Docker engine at unix:///nowhere")


def broken():
    raise Boom("bad luck")


@pytest.mark.parametrize(
    "case",
    [
        ("engine", "cannot reach the Docker engine", False),  # before there is a manager: no result
        ("unexpected", "unexpected error: Boom: bad luck", False),
        ("options", "ports: cannot read", True),  # from _rollout, with the result so far
        ("step", "deploying app from", True),  # RolloutFailed from the replace path
    ],
)
def test_run_fails_the_task_in_one_place(engine, make_module, args_for, capsys, case):
    failure, message, with_result = case
    args = args_for(ports=["http"]) if failure == "options" else args_for()
    engine.health_of_new = "unhealthy"
    make_engine = {"engine": unreachable, "unexpected": broken}.get(failure, lambda: engine)
    with pytest.raises(SystemExit):
        dp.run(make_module(args), make_engine)
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert ("history_file" in result) is with_result


def test_errors_of_the_layers_below_leave_the_manager_as_rollout_failed(engine, make_module, args_for):
    manager = dp.RolloutManager(make_module(args_for(ports=["http"])), engine)
    with pytest.raises(dp.RolloutFailed, match="ports: cannot read") as info:
        manager.run()
    assert isinstance(info.value.__cause__, ro.RolloutError)


# --------------------------------------------------------------------------- a pull that fails touches nothing


def test_a_failed_pull_changes_nothing_and_says_what_still_runs(engine, task, args_for, tmp_path):
    old = engine.add("app", OLD_DIGEST)
    engine.pull_error = EngineError(
        f"pulling {REPO}@{DIGESTS['linux/amd64']} for linux/amd64 failed: dial tcp: i/o timeout"
    )
    result = task(args_for())
    assert result["failed"] is True
    assert result["changed"] is False
    # what the device runs after the task, for the fleet report: the old digest, not the one it failed to pull
    assert (result["digest_before"], result["digest_after"]) == (OLD_DIGEST, OLD_DIGEST)
    assert result["image"] == NEW_IMAGE
    assert result["msg"] == (
        f"pulling {REPO}@{DIGESTS['linux/amd64']} for linux/amd64 failed: dial tcp: i/o timeout."
        f" Nothing was stopped or replaced: app ({OLD_DIGEST}) still runs"
    )
    assert engine.writes() == [("pull", NEW_IMAGE, "linux/amd64")]
    assert engine.containers == {"app": old} and old.running
    entry = history(tmp_path)[-1]
    assert (entry["action"], entry["result"], entry["digest"], entry["previous_digest"]) == (
        "replace",
        "failed",
        DIGESTS["linux/amd64"],
        OLD_DIGEST,
    )
    assert entry["detail"] == result["msg"]


def test_a_pull_past_its_timeout_says_so(engine, task, args_for):
    engine.add("app", OLD_DIGEST)
    engine.pull_error = _engine.PullTimeout(
        f"pulling {REPO}@{DIGESTS['linux/amd64']} for linux/amd64 did not finish within 30 s (pull_timeout);"
        " the engine's last report: e0ba: Downloading 12.6MB/50.3MB"
    )
    result = task(args_for(pull_timeout=30))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].endswith(
        "12.6MB/50.3MB: the device's link to the registry is down or too slow for the image; check the link, or"
        f" raise pull_timeout for slow links and large images. Nothing was stopped or replaced: app ({OLD_DIGEST})"
        " still runs"
    )


def test_a_full_disk_names_the_device_the_free_space_and_what_the_image_needs(engine, task, args_for, monkeypatch):
    engine.add("app", OLD_DIGEST)
    # Docker 20.10's error, as an emulated arm64 guest with 21 MB free answered the pull of a 100 MB image
    engine.pull_error = EngineError(
        f"pulling {REPO}@{DIGESTS['linux/amd64']} for linux/amd64 failed: write"
        " /var/lib/docker/tmp/GetImageBlob727822895: no space left on device"
    )
    monkeypatch.setattr(dp.socket, "gethostname", lambda: "pi-kitchen")
    statvfs = {"/var/lib/docker": os.statvfs_result((4096, 4096, 2038647, 5371, 0, 524288, 510175, 510175, 0, 255))}
    monkeypatch.setattr(dp.os, "statvfs", statvfs.__getitem__)
    result = task(args_for())
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].endswith(
        "no space left on device: the disk of pi-kitchen is full (/var/lib/docker has 22 MB free); the image needs"
        " 52 MB there for its download alone (its layers, compressed) and more to unpack them. Free space in"
        " /var/lib/docker on the device (for example `docker image prune` removes the images no container uses)"
        f" and run again. Nothing was stopped or replaced: app ({OLD_DIGEST}) still runs"
    )


def test_a_failed_first_pull_says_nothing_runs(engine, task, args_for):
    engine.pull_error = EngineError("pulling failed: manifest unknown")
    result = task(args_for())
    assert result["failed"] is True and result["changed"] is False and result["digest_after"] == ""
    assert (
        result["msg"]
        == "pulling failed: manifest unknown. Nothing was stopped or replaced: nothing ran before, and nothing runs"
    )


# --------------------------------------------------------------------------- a swap cut short: power lost


def test_the_swap_is_on_record_before_anything_moves(engine, task, args_for, tmp_path):
    engine.add("app", OLD_DIGEST)
    engine.add("app-previous", KEPT_DIGEST, running=False)
    seen = []
    rename = engine.rename

    def rename_and_look(container, new_name):
        seen.append(history(tmp_path)[-1])
        rename(container, new_name)

    engine.rename = rename_and_look
    task(args_for())
    pending = seen[0]
    assert (pending["result"], pending["digest"], pending["previous_digest"]) == (
        "in_progress",
        DIGESTS["linux/amd64"],
        OLD_DIGEST,
    )
    assert pending["swap"]["created"] is True
    assert pending["swap"]["outgoing_policy"] == {"Name": "always", "MaximumRetryCount": 0}
    # how the swap ended takes the place of its record
    assert [e["result"] for e in history(tmp_path)] == ["ok"]


# (update order, what is replaced, how many writes happen before the power goes)
CUTS = [(order, kind, cut) for order, kind in REPLACE_WRITES for cut in range(len(REPLACE_WRITES[order, kind]))]


@pytest.mark.parametrize("case", CUTS, ids=[f"{o}-{k}-{c}" for o, k, c in CUTS])
def test_a_power_cut_anywhere_in_a_swap_converges_on_the_next_run(engine, make_module, task, args_for, case):
    order, kind, cut = case
    tmp_path = Path(args_for()["history_file"]).parent
    current = engine.add("app", OLD_DIGEST if kind == "deploy" else DIGESTS["linux/amd64"])
    kept = engine.add("app-previous", KEPT_DIGEST if kind == "deploy" else OLD_DIGEST, running=False)
    kept.restart = {"Name": "no", "MaximumRetryCount": 0}
    args = args_for(ports=[], update_order=order) if kind == "deploy" else rollback_args(tmp_path, update_order=order)
    engine.power_cut_after = cut
    with pytest.raises(PowerCut):
        dp.run(make_module(args), lambda: engine)
    engine.boot()
    running = [c.name for c in engine.containers.values() if c.running]
    if order == "stop-first":
        # Never two versions at once. None only when the power goes once the old one has lost its restart policy
        # (just before its stop) and before the new one started: the engine starts only what ran with one.
        stop = REPLACE_WRITES[order, kind].index(("stop", "app-previous" if kind == "deploy" else "app-next", 3))
        assert len(running) == (0 if stop <= cut <= stop + 1 else 1), running
    on_record = (tmp_path / "history.json").is_file()
    cut_short = [e for e in history(tmp_path) if e["result"] == "in_progress"] if on_record else []

    result = task(args)  # the next run, with the power back
    assert not result.get("failed"), result["msg"]
    want = DIGESTS["linux/amd64"] if kind == "deploy" else OLD_DIGEST
    assert sorted(engine.containers) == ["app", "app-previous"]
    new, previous = engine.containers["app"], engine.containers["app-previous"]
    assert ro.deployment_of(new.attrs)["digest"] == want and new.running
    assert previous is current  # what ran before the task is the one kept for a rollback
    assert not previous.running and previous.restart["Name"] == "no"
    entries = history(tmp_path)
    assert entries[-1]["result"] == "ok" and entries[-1]["digest"] == want
    if cut_short:  # the swap had begun: the next run undid it first, and the history says so
        assert entries[-2]["result"] == "interrupted", entries
        assert result["recovered"]["digest"] == cut_short[0]["digest"]
        assert f"app ({ro.deployment_of(current.attrs)['digest']}) runs again" in entries[-2]["detail"]
    else:
        assert result["recovered"] is None
    assert not [e for e in entries if e["result"] == "in_progress"]


def test_check_mode_warns_of_an_interrupted_swap_and_touches_nothing(engine, make_module, task, args_for, tmp_path):
    engine.add("app", OLD_DIGEST)
    engine.power_cut_after = 3  # pull, create, rename: then the power goes
    with pytest.raises(PowerCut):
        dp.run(make_module(args_for()), lambda: engine)
    engine.boot()
    before = len(engine.writes())
    result = task(args_for(), check_mode=True)
    assert result["changed"] is True and result["recovered"] is None
    assert "was interrupted; the task would undo it first" in json.dumps(result.get("warnings"))
    assert len(engine.writes()) == before
    assert history(tmp_path)[-1]["result"] == "in_progress"
