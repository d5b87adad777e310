"""Unit tests for buildx_plugin's main(): installing a local file (src) into a temp dir.

The "binaries" here are tiny scripts that print what `docker-buildx version` prints; the integration tests
install the real plugin binary over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx_plugin as bp
from ansible_collections.fleet.multiarch.plugins.modules import buildx_plugin as mod


def fake_buildx(path, version: str) -> str:
    path.write_text(f"#!/bin/sh\necho 'github.com/docker/buildx v{version} 0123abc'\n")
    path.chmod(0o755)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def run_main(args: dict, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def test_install_from_src_check_apply_idempotent_replace_remove(tmp_path, capsys):
    plugins = tmp_path / "cli-plugins"
    new = tmp_path / "new"
    checksum = fake_buildx(new, "0.99.0")
    args = {"src": str(new), "checksum": checksum, "plugin_dir": str(plugins)}

    planned = run_main({**args, "_ansible_check_mode": True, "_ansible_diff": True}, capsys)
    assert planned["changed"] is True
    assert planned["diff"]["after"]["sha256"] == checksum[7:]
    assert not plugins.exists()

    done = run_main(args, capsys)
    assert (done["changed"], done["version"], done["sha256"]) == (True, "0.99.0", checksum[7:])
    target = plugins / "docker-buildx"
    assert oct(target.stat().st_mode & 0o777) == "0o755"

    assert run_main(args, capsys)["changed"] is False

    # a wrong checksum installs nothing and leaves the plugin as it was
    other = tmp_path / "other"
    fake_buildx(other, "1.0.0")
    wrong = "sha256:" + "0" * 64
    failed = run_main({"src": str(other), "checksum": wrong, "plugin_dir": str(plugins)}, capsys)
    assert failed["failed"] is True
    assert "checksum mismatch" in failed["msg"] and "nothing was installed" in failed["msg"]
    assert "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest() == checksum
    assert sorted(p.name for p in plugins.iterdir()) == ["docker-buildx"]  # no temporary file left behind

    # a source without checksum replaces by content
    replaced = run_main({"src": str(other), "plugin_dir": str(plugins), "_ansible_diff": True}, capsys)
    assert (replaced["changed"], replaced["version"]) == (True, "1.0.0")
    assert replaced["diff"]["before"]["version"] == "0.99.0"

    assert run_main({"state": "absent", "plugin_dir": str(plugins), "_ansible_check_mode": True}, capsys)["changed"]
    assert target.exists()
    assert run_main({"state": "absent", "plugin_dir": str(plugins)}, capsys)["changed"] is True
    assert not target.exists()
    assert run_main({"state": "absent", "plugin_dir": str(plugins)}, capsys)["changed"] is False


def test_a_file_that_does_not_run_is_not_installed(tmp_path, capsys):
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\x7fELF truncated")
    result = run_main({"src": str(bogus), "plugin_dir": str(tmp_path / "p")}, capsys)
    assert result["failed"] is True
    assert "does not run as docker-buildx" in result["msg"]
    assert not (tmp_path / "p" / "docker-buildx").exists()


def test_user_scope_installs_into_the_owners_home_and_gives_it_the_files(tmp_path, capsys, monkeypatch):
    """scope user, owner nobody (its home made a temp directory): ~/.docker, cli-plugins and the plugin are its."""
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    nobody = pwd.getpwnam("nobody")
    home = tmp_path / "home"
    home.mkdir()
    real_getpwnam = pwd.getpwnam
    monkeypatch.setattr(
        pwd,
        "getpwnam",
        lambda name: (
            pwd.struct_passwd((*nobody[:5], str(home), nobody.pw_shell)) if name == "nobody" else real_getpwnam(name)
        ),
    )
    new = tmp_path / "new"
    checksum = fake_buildx(new, "0.99.0")
    args = {"src": str(new), "checksum": checksum, "scope": "user", "owner": "nobody"}
    done = run_main(args, capsys)
    target = home / ".docker" / "cli-plugins" / "docker-buildx"
    assert (done["changed"], done["path"]) == (True, str(target))
    for path in (home / ".docker", target.parent, target):
        assert path.stat().st_uid == nobody.pw_uid, path
    assert run_main(args, capsys)["changed"] is False


def test_system_scope_installs_into_the_system_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bp, "SYSTEM_PLUGIN_DIR", str(tmp_path / "lib" / "cli-plugins"))
    new = tmp_path / "new"
    checksum = fake_buildx(new, "0.99.0")
    done = run_main({"src": str(new), "checksum": checksum, "scope": "system"}, capsys)
    assert (done["changed"], done["path"]) == (True, str(tmp_path / "lib" / "cli-plugins" / "docker-buildx"))
    assert done["version"] == "0.99.0"
