"""Unit tests for _history: the records, the bounded list, and the History file."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _history as hi

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_history_is_bounded_and_keeps_the_newest():
    history = hi.parse_history("", "/h.json")
    for number in range(5):
        record = hi.new_record(when=f"t{number}", name="app", action="replace", result="ok", digest=f"d{number}")
        history = hi.add_record(history, record, 3)
    assert [r["digest"] for r in history["deployments"]] == ["d2", "d3", "d4"]
    assert history["version"] == hi.HISTORY_VERSION
    assert hi.parse_history(json.dumps(history), "/h.json") == history


def test_history_record_fields():
    record = hi.new_record(
        when="2026-11-28T06:44:08+00:00",
        name="app",
        action="replace",
        result="rolled_back",
        reference="r:3",
        digest=DIGEST_B,
        previous_digest=DIGEST_A,
        platform="linux/arm/v7",
        config_hash="sha256:c",
        health={"status": "unhealthy"},
        seconds=4.12345,
    )
    assert record["health"] == "unhealthy"
    assert record["seconds"] == 4.123
    assert record["previous_digest"] == DIGEST_A


@pytest.mark.parametrize(("text", "message"), [("{", "is not JSON"), ("[]", "no 'deployments' list")])
def test_parse_history_refuses(text, message):
    with pytest.raises(hi.HistoryError, match=message):
        hi.parse_history(text, "/h.json")


def test_last_record_of_a_container():
    history = {"deployments": [{"container": "a", "n": 1}, {"container": "b", "n": 2}, {"container": "a", "n": 3}]}
    assert hi.last_record(history, "a")["n"] == 3
    assert hi.last_record(history, "c") is None


# --------------------------------------------------------------------------- the History file


def test_history_file_appends_bounded_and_reads_back(tmp_path):
    warnings = []
    history = hi.History(str(tmp_path / "deep" / "app.json"), 2, warnings.append)
    assert history.read() == {"version": hi.HISTORY_VERSION, "deployments": []}
    assert history.last("app") is None
    for number in range(3):
        history.append(hi.new_record(when=f"t{number}", name="app", action="replace", result="ok", digest=f"d{number}"))
    history.append(hi.new_record(when="t3", name="other", action="create", result="ok", digest="x"))
    assert [r["digest"] for r in history.read()["deployments"]] == ["d2", "x"]
    assert history.last("app")["digest"] == "d2"
    assert warnings == []
    assert oct((tmp_path / "deep" / "app.json").stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["app.json"]  # no temporary file left


def test_history_file_that_cannot_be_written_is_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    warnings = []
    history = hi.History(str(blocker / "app.json"), 5, warnings.append)
    history.append(hi.new_record(when="t", name="app", action="create", result="ok"))
    assert len(warnings) == 1
    assert warnings[0].startswith(f"the deployment history could not be written to {blocker / 'app.json'}: ")


def test_history_file_that_is_not_a_history_is_refused(tmp_path):
    path = tmp_path / "app.json"
    path.write_text("[]")
    warnings = []
    history = hi.History(str(path), 5, warnings.append)
    with pytest.raises(hi.HistoryError, match="no 'deployments' list"):
        history.read()
    history.append(hi.new_record(when="t", name="app", action="create", result="ok"))
    assert path.read_text() == "[]"  # not overwritten
    assert "no 'deployments' list" in warnings[0]


def test_history_file_that_cannot_be_read_names_it(tmp_path):
    history = hi.History(str(tmp_path), 5, lambda msg: None)  # a directory
    with pytest.raises(hi.HistoryError, match=f"cannot read the history file {tmp_path}"):
        history.read()


def test_default_path():
    assert hi.default_path("app") == "/var/lib/fleet-multiarch/rollout/app.json"


def test_the_record_of_how_a_swap_ended_takes_the_place_of_its_in_progress_record():
    history = hi.parse_history("", "/h.json")
    for name, digest in (("app", "d1"), ("other", "o1")):
        history = hi.add_record(
            history, hi.new_record(when="t", name=name, action="create", result="ok", digest=digest), 5
        )
    pending = hi.new_record(when="t2", name="app", action="replace", result=hi.IN_PROGRESS, digest="d2")
    history = hi.add_record(history, pending, 5)
    # another container's records are not this swap's end
    history = hi.add_record(
        history, hi.new_record(when="t3", name="other", action="replace", result="ok", digest="o2"), 5
    )
    assert hi.last_record(history, "app")["result"] == hi.IN_PROGRESS
    history = hi.add_record(
        history, hi.new_record(when="t4", name="app", action="replace", result="ok", digest="d2"), 5
    )
    assert [(r["container"], r["digest"], r["result"]) for r in history["deployments"]] == [
        ("app", "d1", "ok"),
        ("other", "o1", "ok"),
        ("other", "o2", "ok"),
        ("app", "d2", "ok"),
    ]
