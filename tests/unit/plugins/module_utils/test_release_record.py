# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release record (module_utils/_release_record.py): the one schema its writer and its readers share.

Written by the release action plugin, read by the same plugin (the previous record), the release_record lookup
and the rollout_target filter; those run against real files in tests/integration/test_release_role.py and
test_rollout_role.py.
"""

from __future__ import annotations

import json
import stat

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import (
    ReleaseRecord,
    ReleaseRecordError,
)

DIGEST = "sha256:" + "1" * 64
RECORD = {
    "schema": 1,
    "name": "demo-app",
    "repository": "127.0.0.1:5000/fleet/demo-app",
    "tag": "864b2547a679",
    "moving_tags": ["latest", "0.1.0"],
    "index_digest": DIGEST,
    "platforms": {"linux/amd64": "sha256:" + "2" * 64, "linux/arm64": "sha256:" + "3" * 64},
    "fingerprint": "sha256:" + "4" * 64,
    "created": "2026-11-28T12:17:07Z",
    "changed": True,
    "sizes": {"linux/amd64": 1068732, "linux/arm64": 1034178},
    "git_commit": "864b2547a67929724ce7cb7d95b8e68afdc207d5",
    "git_dirty": False,
}


def test_write_then_load_gives_the_same_record_and_the_same_bytes(tmp_path):
    path = tmp_path / "releases" / "demo-app.json"
    record = ReleaseRecord.from_dict(RECORD)
    record.write(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == RECORD
    assert path.read_text().endswith("}\n") and '\n  "changed": true,' in path.read_text()  # sorted, 2 spaces
    again = ReleaseRecord.load(str(path))
    assert again.to_dict() == RECORD and again.text() == path.read_text()
    assert list(tmp_path.joinpath("releases").iterdir()) == [path]  # no temporary file left


def test_a_missing_file_is_no_record(tmp_path):
    assert ReleaseRecord.load(str(tmp_path / "none.json")) is None


def test_a_reader_keeps_keys_it_does_not_know_and_fills_the_optional_ones():
    minimal = {"schema": 1, "repository": "127.0.0.1:5000/fleet/app", "index_digest": DIGEST, "signed_by": "ci"}
    data = ReleaseRecord.from_dict(minimal).data
    assert data["signed_by"] == "ci"
    assert (data["platforms"], data["sizes"], data["moving_tags"], data["git_dirty"]) == ({}, {}, [], False)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not JSON"),
        ("[]", "is not a JSON object but list"),
        ('{"schema": 2}', "has schema 2; this collection reads and writes schema 1"),
        ('{"schema": true}', "has schema True"),
        ('{"schema": 1, "repository": "127.0.0.1:5000/app"}', "has no index_digest"),
    ],
)
def test_a_bad_file_is_named_in_the_error(tmp_path, text, says):
    path = tmp_path / "app.json"
    path.write_text(text)
    with pytest.raises(ReleaseRecordError) as caught:
        ReleaseRecord.load(str(path))
    assert str(path) in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"repository": "fleet/demo-app"}, "with its registry host"),
        ({"repository": "127.0.0.1:5000/fleet/demo-app@" + DIGEST}, "it has a tag or a digest"),
        ({"index_digest": "latest"}, "index_digest must be a digest"),
        ({"platforms": {"linux/arm64": "sha256:abc"}}, "platforms[linux/arm64] must be a digest"),
        ({"platforms": ["linux/arm64"]}, "platforms must map platforms"),
        ({"sizes": {"linux/arm64": -1}}, "sizes[linux/arm64] must be a number of bytes"),
        ({"sizes": {"linux/arm64": True}}, "sizes[linux/arm64] must be a number of bytes"),
        ({"moving_tags": "latest"}, "moving_tags must be a list of tags"),
        ({"moving_tags": [".bad"]}, "moving_tags must be a list of tags"),
        ({"tag": 12}, "tag must be a string"),
        ({"git_dirty": "no"}, "git_dirty must be true or false"),
    ],
)
def test_a_bad_record_says_what_is_wrong(changes, says):
    with pytest.raises(ReleaseRecordError, match=says.replace("[", r"\[").replace("]", r"\]")) as caught:
        ReleaseRecord.from_dict({**RECORD, **changes}, "the release record releases/app.json")
    assert str(caught.value).startswith("the release record releases/app.json")


def test_same_release_and_same_content():
    first = ReleaseRecord.from_dict(RECORD)
    rerun = ReleaseRecord.from_dict({**RECORD, "created": "2026-12-01T00:00:00Z", "changed": False})
    assert rerun.same_release(first) and rerun.same_content(first)  # the run's own keys do not count
    more_tags = ReleaseRecord.from_dict({**RECORD, "moving_tags": ["latest", "0.1.0", "stable"]})
    assert more_tags.same_release(first) and not more_tags.same_content(first)
    rebuilt = ReleaseRecord.from_dict({**RECORD, "index_digest": "sha256:" + "9" * 64})
    assert not rebuilt.same_release(first) and not rebuilt.same_content(first)
    assert not first.same_release(None) and not first.same_content(None)
