"""fleet.multiarch.daemon_json with the real engines' own check (issue 26: settings the engine refuses).

Two engines check the merged file before it is written: Debian 12's dockerd 20.10 (no --validate: a start as
the unprivileged user nobody, which loads and checks the file, then stops at the root check) and trixie's
dockerd 26 of the test environment's second engine (`dockerd --validate`). Each refusal must leave the file
exactly as it was and report `changed: false`; the same task used to write the file with `changed: true`,
after which `dockerd --config-file` refused to start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import run, run_module

ENGINES = {
    "dockerd 20.10": "/usr/sbin/dockerd",
    "dockerd 26": str(
        Path(os.environ.get("FLEET_TESTENV_CACHE", "/var/cache/fleet-multiarch-testenv"))
        / "engine2"
        / "bin"
        / "dockerd"
    ),
}
BEFORE = '{\n    "log-driver": "json-file",\n    "registry-mirrors": ["http://127.0.0.1:5000"]\n}\n'


@pytest.fixture(params=sorted(ENGINES))
def dockerd(request, testenv):
    path = ENGINES[request.param]
    assert os.access(path, os.X_OK), f"{path} is missing: run scripts/testenv.sh up"
    return path


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"log-drivr": "local", "registry-mirrors": 5}, ["don't match any configuration option: log-drivr"]),
        ({"registry-mirrors": 5}, ["cannot unmarshal number", "registry-mirrors"]),
        ({"log-level": "loud"}, ["loud"]),
    ],
)
def test_settings_the_engine_refuses_are_not_written(tmp_path, dockerd, settings, words):
    path = tmp_path / "daemon.json"
    path.write_text(BEFORE)
    stamp = path.stat().st_mtime_ns
    args = {"path": str(path), "settings": settings, "dockerd": dockerd}
    for check_mode in (True, False):
        result = run_module("fleet.multiarch.daemon_json", args, check_mode=check_mode)
        assert result.get("failed") is True, result
        assert result["changed"] is False
        for word in words:
            assert word in result["msg"], result["msg"]
        assert f"the engine ({dockerd}) refuses" in result["msg"] and "was left as it was" in result["msg"]
        assert "fleet-daemon-json-" not in result["msg"]  # the engine's words name the file, not the private copy
        assert (path.read_text(), path.stat().st_mtime_ns) == (BEFORE, stamp)
    assert not list(Path("/tmp").glob("fleet-daemon-json-*")), "the private copy was left behind"  # noqa: S108


def test_settings_the_engine_accepts_are_written_and_loaded_by_the_engine(tmp_path, dockerd):
    path = tmp_path / "daemon.json"
    path.write_text(BEFORE)
    args = {"path": str(path), "settings": {"log-driver": "local", "log-opts": {"max-size": "10m"}}, "dockerd": dockerd}
    assert run_module("fleet.multiarch.daemon_json", args, check_mode=True)["changed"] is True
    assert path.read_text() == BEFORE
    result = run_module("fleet.multiarch.daemon_json", args)
    assert result["changed"] is True, result
    assert result["config"]["log-driver"] == "local"
    assert run_module("fleet.multiarch.daemon_json", args)["changed"] is False
    # what the module accepted, the engine loads: dockerd 26 says so itself; 20.10 gets past its configuration
    # to the root check when started unprivileged
    if "--validate" in run([dockerd, "--help"]).stdout:
        checked = run([dockerd, "--validate", "--config-file", str(path)])
        assert (checked.stdout + checked.stderr).strip() == "configuration OK"


def test_without_validate_the_file_is_written_as_before(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(BEFORE)
    args = {"path": str(path), "settings": {"log-drivr": "local"}, "validate": False}
    result = run_module("fleet.multiarch.daemon_json", args)
    assert result["changed"] is True and "log-drivr" in path.read_text()
