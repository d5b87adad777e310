# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in for AnsibleModule that the release's action plugin gives the release's code on the controller.

The whole path (the controller's answer beside the module's, compared key by key) is tested against the real
registry in tests/integration/test_release_role.py; here, what the stand-in does with commands.
"""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.fleet.multiarch.plugins.plugin_utils._controller_module import ControllerModule, NeedsModule


def stand_in() -> ControllerModule:
    return ControllerModule({"docker_cli": None}, check_mode=False, diff=False)


def test_run_command_runs_an_argv_like_the_module(monkeypatch):
    monkeypatch.setenv("FLEET_TEST_WORD", "expanded")
    script = 'echo "$1 $FLEET_EXTRA"; echo oops >&2; exit 3'
    argv = ["sh", "-c", script, "-", "$FLEET_TEST_WORD"]
    rc, out, err = stand_in().run_command(argv, environ_update={"FLEET_EXTRA": "extra"})
    assert (rc, out, err) == (3, "expanded extra\n", "oops\n")
    assert stand_in().run_command(["cat"], data="in")[1] == "in"


def test_what_only_the_module_does_hands_over_to_it():
    with pytest.raises(NeedsModule):
        stand_in().run_command(["true"], before_communicate_callback=print)
    with pytest.raises(NeedsModule):
        stand_in().run_command("true")
    with pytest.raises(NeedsModule):
        stand_in().get_bin_path("fleet-no-such-program", required=True)


def test_get_bin_path_and_warnings():
    module = stand_in()
    assert module.get_bin_path("sh") == shutil.which("sh")
    assert module.get_bin_path("fleet-no-such-program") is None
    module.warn("careful")
    assert module.warnings == ["careful"]
