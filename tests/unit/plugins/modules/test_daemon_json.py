"""daemon_json: the merge rules, and main() on real files in a temporary directory (text, modes, check mode,
diff, backup, the files it refuses)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _daemon_json as dj
from ansible_collections.fleet.multiarch.plugins.modules import daemon_json as mod

# A daemon.json as an operator or a package writes it: four-space indent, keys not in order.
HAND_WRITTEN = """{
    "storage-driver": "overlay2",
    "log-opts": {"max-file": "3", "max-size": "10m"},
    "log-driver": "json-file"
}
"""


def run_main(args: dict, capsys, check_mode: bool = False, diff: bool = False) -> dict:
    """main() on a file of the test; the engine's check is tested on captured output below and for real in
    tests/integration/test_daemon_json.py."""
    args = {"validate": False, **args}
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    if diff:
        args = {**args, "_ansible_diff": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def test_objects_merge_key_by_key_and_other_values_are_replaced():
    current = {"log-opts": {"max-size": "10m", "max-file": "3"}, "registry-mirrors": ["http://a"], "debug": True}
    settings = {"log-opts": {"max-size": "20m"}, "registry-mirrors": ["http://b"], "features": {"x": True}}
    assert dj.merged(current, settings) == {
        "log-opts": {"max-size": "20m", "max-file": "3"},
        "registry-mirrors": ["http://b"],
        "debug": True,
        "features": {"x": True},
    }
    assert current["log-opts"] == {"max-size": "10m", "max-file": "3"}  # the input is not modified
    assert dj.merged({"log-opts": "text"}, {"log-opts": {"a": "1"}}) == {"log-opts": {"a": "1"}}


def test_render_matches_what_the_roles_wrote_with_to_nice_json():
    # the text of Jinja's to_nice_json(indent=2), so files written by earlier versions of the roles stay unchanged
    assert dj.render({"b": [1, 2], "a": {"d": "x", "c": True}}) == (
        '{\n  "a": {\n    "c": true,\n    "d": "x"\n  },\n  "b": [\n    1,\n    2\n  ]\n}\n'
    )


def test_a_missing_file_and_directory_are_created(tmp_path, capsys):
    path = tmp_path / "etc" / "docker" / "daemon.json"
    result = run_main({"path": str(path), "settings": {"log-driver": "local"}}, capsys)
    assert result["changed"] is True
    assert result["config"] == {"log-driver": "local"}
    assert path.read_text() == '{\n  "log-driver": "local"\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert [p.name for p in path.parent.iterdir()] == ["daemon.json"]  # no temporary file left behind
    again = run_main({"path": str(path), "settings": {"log-driver": "local"}}, capsys)
    assert again["changed"] is False


def test_a_new_file_is_readable_whatever_the_umask(tmp_path, capsys):
    path = tmp_path / "docker" / "daemon.json"
    umask = os.umask(0o077)
    try:
        run_main({"path": str(path), "settings": {"debug": True}}, capsys)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_empty_settings_create_an_empty_object_once(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    assert run_main({"path": str(path), "settings": {}}, capsys)["changed"] is True
    assert path.read_text() == "{}\n"
    assert run_main({"path": str(path), "settings": {}}, capsys)["changed"] is False


def test_a_file_holding_the_settings_in_another_formatting_is_left_alone(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text(HAND_WRITTEN)
    result = run_main(
        {"path": str(path), "settings": {"log-driver": "json-file", "log-opts": {"max-size": "10m"}}}, capsys
    )
    assert result["changed"] is False
    assert result["config"]["storage-driver"] == "overlay2"
    assert path.read_text() == HAND_WRITTEN


def test_a_change_keeps_the_other_keys_the_owner_and_the_mode(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text(HAND_WRITTEN)
    path.chmod(0o600)
    result = run_main({"path": str(path), "settings": {"log-opts": {"max-size": "50m"}}}, capsys, diff=True)
    assert result["changed"] is True
    written = json.loads(path.read_text())
    assert written == {
        "storage-driver": "overlay2",
        "log-driver": "json-file",
        "log-opts": {"max-file": "3", "max-size": "50m"},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert result["diff"]["before"] == HAND_WRITTEN
    assert result["diff"]["after"] == path.read_text()
    assert result["diff"]["before_header"] == str(path)
    assert "backup_file" not in result


def test_a_symbolic_link_is_kept_and_the_file_it_points_to_written(tmp_path, capsys):
    real = tmp_path / "conf" / "daemon.json"
    real.parent.mkdir()
    real.write_text(HAND_WRITTEN)
    link = tmp_path / "daemon.json"
    link.symlink_to(real)
    result = run_main({"path": str(link), "settings": {"debug": True}}, capsys)
    assert result["changed"] is True
    assert link.is_symlink()
    assert json.loads(real.read_text())["debug"] is True
    assert json.loads(real.read_text())["storage-driver"] == "overlay2"


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "docker" / "daemon.json"
    result = run_main({"path": str(path), "settings": {"debug": True}}, capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == ""
    assert json.loads(result["diff"]["after"]) == {"debug": True}
    assert not path.parent.exists()
    path.parent.mkdir()
    path.write_text(HAND_WRITTEN)
    result = run_main({"path": str(path), "settings": {"debug": True}}, capsys, check_mode=True)
    assert result["changed"] is True
    assert result["config"]["debug"] is True
    assert path.read_text() == HAND_WRITTEN


def test_backup_keeps_the_old_file(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text(HAND_WRITTEN)
    result = run_main({"path": str(path), "settings": {"debug": True}, "backup": True}, capsys)
    assert result["changed"] is True
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(tmp_path)
    assert open(backup).read() == HAND_WRITTEN
    assert run_main({"path": str(path), "settings": {"debug": True}, "backup": True}, capsys).get("backup_file") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"log-driver": "local",}', r"is not valid JSON \(.*line 1.*\); fix or remove it"),
        ('["log-driver"]', "holds a JSON list, not an object"),
    ],
)
def test_a_file_that_is_not_a_json_object_is_never_overwritten(tmp_path, capsys, text, message):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    result = run_main({"path": str(path), "settings": {"debug": True}}, capsys)
    assert result["failed"] is True
    assert str(path) in result["msg"]
    assert "Nothing was written" in result["msg"]
    assert re.search(message, result["msg"])
    assert path.read_text() == text


def test_a_directory_is_refused(tmp_path, capsys):
    result = run_main({"path": str(tmp_path), "settings": {"debug": True}}, capsys)
    assert result["failed"] is True
    assert result["msg"] == f"{tmp_path} is a directory; give the path of the daemon.json file"


def test_an_unreadable_parent_is_reported(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = run_main({"path": str(blocker / "daemon.json"), "settings": {"debug": True}}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(f"cannot read {blocker / 'daemon.json'}: ")


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "daemon_json"


def captured(name: str) -> tuple:
    """(rc, out, err) of a real engine's check (fixtures/daemon_json/SOURCE)."""
    return tuple(
        int(text) if ext == "rc" else text
        for ext, text in ((e, (FIXTURES / f"{name}.{e}").read_text()) for e in ("rc", "out", "err"))
    )


COPY_DIR = "/tmp/djv"  # noqa: S108 - where the captured files were checked
LEGACY = ["/usr/sbin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.mark.parametrize(
    ("help_text", "euid", "setpriv", "want"),
    [
        ("  --validate   Validate daemon configuration and exit", 0, None, ["d", "--validate", "--config-file", "c"]),
        ("  --tls   Use TLS", 1000, None, ["d", "--config-file", "c"]),
        ("  --tls   Use TLS", 0, "/usr/sbin/setpriv", [*LEGACY, "d", "--config-file", "c"]),
        ("  --tls   Use TLS", 0, None, None),
    ],
)
def test_check_argv(help_text, euid, setpriv, want):
    assert dj.check_argv("d", help_text, "c", euid, setpriv) == want


@pytest.mark.parametrize(
    ("engine", "argv"),
    [("legacy", [*LEGACY, "/usr/sbin/dockerd", "--config-file"]), ("modern", ["dockerd", "--validate"])],
)
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("good", None),
        ("bad", ["the following directives don't match any configuration option: log-drivr"]),
        ("type", ["cannot unmarshal number", "registry-mirrors", "[]string"]),
        ("value", ["loud"]),
    ],
)
def test_check_problem_on_real_engines_output(engine, argv, name, words):
    copy = f"{COPY_DIR}/{name}.json"
    problem = dj.check_problem([*argv, copy], captured(f"{engine}-{name}"), copy, "/etc/docker/daemon.json")
    if words is None:
        assert problem == ""
        return
    for word in words:
        assert word in problem, (word, problem)
    assert COPY_DIR not in problem and "level=info" not in problem
    if name != "value":
        assert "/etc/docker/daemon.json" in problem
