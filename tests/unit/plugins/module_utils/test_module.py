"""Unit tests for _module.run_manager: the one exit path and the one failure path of the managed modules."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._buildx import BuildxError
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_manager


class Left(Exception):
    """exit_json or fail_json was called (they never return)."""


class FakeModule:
    def __init__(self):
        self.left = None

    def exit_json(self, **result):
        self.left = ("exit", result)
        raise Left

    def fail_json(self, **result):
        self.left = ("fail", result)
        raise Left


class Manager:
    def __init__(self, failure=None, diff=None):
        self.failure = failure
        self.result = {"changed": False, "name": "x"}
        self.diff = diff

    def run(self):
        self.result["changed"] = True
        if self.failure is not None:
            raise self.failure


def leave(make, errors=(BuildxError,)) -> tuple:
    module = FakeModule()
    with pytest.raises(Left):
        run_manager(module, make, errors)
    return module.left


def test_exit_with_the_result_and_the_diff_when_there_is_one():
    assert leave(lambda: Manager(diff={"before": "a", "after": "b"})) == (
        "exit",
        {"changed": True, "name": "x", "diff": {"before": "a", "after": "b"}},
    )
    assert leave(Manager) == ("exit", {"changed": True, "name": "x"})


def test_a_known_error_fails_with_its_message_the_result_so_far_and_its_own_fields():
    failure = BuildxError("docker buildx rm x failed: busy", cmd=["docker", "buildx", "rm"], rc=1, stderr="busy")
    kind, result = leave(lambda: Manager(failure))
    assert kind == "fail"
    assert result["msg"] == "docker buildx rm x failed: busy"
    assert (result["changed"], result["name"], result["cmd"], result["rc"]) == (
        True,
        "x",
        ["docker", "buildx", "rm"],
        1,
    )


def test_a_failure_while_checking_the_options_has_no_result():
    def make():
        raise BuildxError("invalid mode '0644'")

    assert leave(make) == ("fail", {"msg": "invalid mode '0644'"})


def test_an_unexpected_error_fails_with_its_traceback():
    kind, result = leave(lambda: Manager(KeyError("nodes")))
    assert kind == "fail"
    assert result["msg"] == "unexpected error: KeyError: 'nodes'"
    assert "KeyError" in result["exception"] and result["changed"] is True
