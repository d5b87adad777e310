"""Unit tests for container_rollout's main(): the options reach the rollout manager and the task ends once.

The rollout itself (the order of Engine API calls, check mode, rollback, failures) is tested where it lives,
in tests/unit/plugins/module_utils/test_deploy.py; the fakes are in tests/unit/plugins/conftest.py.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils._engine import EngineError
from ansible_collections.fleet.multiarch.plugins.modules import container_rollout as mod
from tests.unit.plugins.conftest import DIGESTS, REPO


@pytest.fixture
def engines(engine, monkeypatch):
    """The engine main() builds is the fake; the list holds the docker_host it was asked for."""
    hosts = []

    def build(base_url):
        hosts.append(base_url)
        return engine

    monkeypatch.setattr(mod, "Engine", build)
    return hosts


def run_main(capsys, args: dict, check_mode=False) -> dict:
    with patch_module_args({**args, "_ansible_check_mode": check_mode}), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def test_main_deploys_through_the_engine_at_docker_host(engine, engines, capsys, args_for):
    result = run_main(capsys, args_for(docker_host="tcp://127.0.0.1:2375"))
    assert result["changed"] is True, result.get("msg")
    assert result["digest_after"] == DIGESTS["linux/amd64"]
    assert engines == ["tcp://127.0.0.1:2375"]
    assert engine.containers["app"].image == f"{REPO}@{DIGESTS['linux/amd64']}"


def test_main_check_mode_changes_nothing(engine, engines, capsys, args_for):
    result = run_main(capsys, args_for(), check_mode=True)
    assert (result["changed"], result["action"]) == (True, "create")
    assert engine.writes() == []


def test_main_failure_carries_the_result(engine, engines, capsys, args_for):
    engine.health_of_new = "unhealthy"
    result = run_main(capsys, args_for())
    assert result["failed"] is True
    assert "There was no previous container to restore" in result["msg"]
    assert result["logs"] == ["app starting", "error: cannot bind"]
    assert result["action"] == "create"


def test_unreachable_engine_fails_without_a_result(monkeypatch, capsys, args_for):
    def unreachable(base_url):
        raise EngineError(f"cannot reach the Docker engine at {base_url}")

    monkeypatch.setattr(mod, "Engine", unreachable)
    result = run_main(capsys, args_for(docker_host="unix:///nowhere.sock"))
    assert result["failed"] is True
    assert result["msg"] == "cannot reach the Docker engine at unix:///nowhere.sock"
    assert "action" not in result


def test_state_started_needs_image(engines, capsys, args_for):
    args = args_for()
    del args["image"]
    result = run_main(capsys, args)
    assert result["failed"] is True
    assert "image" in result["msg"]


def test_username_needs_password(engines, capsys, args_for):
    result = run_main(capsys, args_for(username="fleet"))
    assert result["failed"] is True
    assert "password" in result["msg"]
