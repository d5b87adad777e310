# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release's pure logic (module_utils/_release.py) on captured git and registry output.

The manager itself runs against the real engine and registry in tests/integration/test_release_role.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2.filters import do_filesizeformat

from ansible_collections.fleet.multiarch.plugins.module_utils import _release as rel
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import image_build_argument_spec
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import entries_from_index
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import Fetched

REPO = "127.0.0.1:5000/fleet-test/release-capture"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "release"
COMMIT = "c5ba4c10dafe3cbebdc896cc46f2819db983cb28"
FINGERPRINT = "sha256:62ac51d6877b3a4bbcdbdf6890215207d605e7a440c40f136608c15266250bae"
INDEX_DIGEST = "sha256:75ebf5d4ce605c8b76bfe629e6016e0095285cc19678d5ed21d2cf5b9f6d6fde"
BUILT = {
    "linux/amd64": "sha256:1339f48ccd4eeaa356f45f74ac9418589e9e3cc65346258dcc986cf69524c3ef",
    "linux/arm64": "sha256:902d3b4c2673995447eaefc9c2bdf98fbfc1fda6b8b74ff167bbd7d3f658e2e1",
    "linux/arm/v7": "sha256:cfe5edbe366fd1092f7203a4c422353ed9784af1197c8c6333a838fbace84549",
}


def git_output(case: str) -> tuple:
    text = (FIXTURES / f"git-status-{case}.txt").read_text()
    if case == "not-a-checkout":
        rc = text.splitlines()[-1]
        return int(rc.split()[1]), ""
    return 0, text


def release_index() -> Fetched:
    body = (FIXTURES / "release-index.json").read_bytes()
    return Fetched("application/vnd.oci.image.index.v1+json", INDEX_DIGEST, body, json.loads(body))


@pytest.mark.parametrize(
    ("case", "commit", "dirty"),
    [
        ("clean", COMMIT, False),
        ("dirty", COMMIT, True),
        ("subdir-untracked", COMMIT, True),
        ("upstream", COMMIT, False),
        ("detached", COMMIT, False),
        ("initial", "", True),
        ("sha256", "57a8d890060b7d8e80dd788cb04746b800f39909418597928ea04a1124bce64c", False),
        ("not-a-checkout", "", False),
    ],
)
def test_git_state_from_captured_status(case, commit, dirty):
    assert rel.git_state(*git_output(case)) == (commit, dirty)


@pytest.mark.parametrize(
    ("tag", "commit", "dirty", "expected"),
    [
        ("1.2.0", COMMIT, True, "1.2.0"),  # given: whatever git says
        ("", COMMIT, False, "c5ba4c10dafe"),
        ("", COMMIT, True, "c5ba4c10dafe-dirty-62ac51d6877b"),
        ("", "", False, "fp-62ac51d6877b"),
        ("", "", True, "fp-62ac51d6877b"),  # no commit yet
    ],
)
def test_immutable_tag(tag, commit, dirty, expected):
    assert rel.immutable_tag(tag, commit, dirty, FINGERPRINT) == expected


def gate(built: dict, required: list) -> str:
    index = release_index()
    return rel.gate_problem(index, entries_from_index(index, "the release index", REPO), built, required)


def test_the_gate_passes_the_published_release():
    assert gate(BUILT, ["linux/amd64", "linux/arm64", "linux/arm/v7"]) == ""
    # the devices' platforms, containerd's matching: aarch64 and armhf hosts are served; an arm/v6 host is not
    assert gate(BUILT, ["aarch64", "armhf"]) == ""


@pytest.mark.parametrize(
    ("built", "required", "says"),
    [
        (BUILT, ["linux/arm/v6"], "required platforms not served: linux/arm/v6"),
        (BUILT, ["linux/riscv64", "linux/amd64"], "required platforms not served: linux/riscv64 (the index has"),
        ({**BUILT, "linux/amd64": "sha256:" + "0" * 64}, ["linux/amd64"], "the index lists"),
        ({"linux/amd64": BUILT["linux/amd64"]}, ["linux/amd64"], "the build reported"),
    ],
)
def test_the_gate_names_what_is_wrong(built, required, says):
    assert says in gate(built, required)


def test_the_gate_refuses_an_image_manifest():
    body = (FIXTURES / "release-amd64-manifest.json").read_bytes()
    docker_image = "application/vnd.docker.distribution.manifest.v2+json"
    image = Fetched(docker_image, BUILT["linux/amd64"], body, json.loads(body))
    assert rel.gate_problem(image, [], BUILT, ["linux/amd64"]) == f"it is {docker_image}, not an index"


def test_image_size_is_config_and_layers():
    manifest = json.loads((FIXTURES / "release-amd64-manifest.json").read_text())
    assert rel.image_size(manifest) == 3107 + 2642225 + 832
    assert rel.image_size({}) == 0


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 2646164, 918968, 10**9 - 1, 3 * 10**12, 7 * 10**15])
def test_size_text_is_what_jinja_filesizeformat_prints(size):
    assert rel.size_text(size) == do_filesizeformat(size)


def test_summary_lines():
    record = {
        "name": "app",
        "repository": "127.0.0.1:5000/fleet/app",
        "tag": "c5ba4c10dafe",
        "index_digest": INDEX_DIGEST,
        "moving_tags": ["latest", "1.0"],
        "platforms": BUILT,
        "sizes": {"linux/amd64": 2646164, "linux/arm64": 1849530},
    }
    lines = rel.summary_lines(record, built=False, check_mode=True)
    assert lines[0] == "app  127.0.0.1:5000/fleet/app:c5ba4c10dafe unchanged (check mode)"
    assert lines[1] == f"index {INDEX_DIGEST} <- latest, 1.0"
    assert lines[2] == f"{'platform':14} {'digest':71} {'size':>10}"
    assert lines[3] == f"linux/amd64    {BUILT['linux/amd64']}     2.6 MB"
    assert lines[5].endswith("   0 Bytes")  # no size known
    assert rel.summary_lines({**record, "moving_tags": []}, True, False)[1].endswith("<- (no moving tags)")
    assert rel.summary_lines(record, False, False, "would be built") == [
        "app  127.0.0.1:5000/fleet/app:c5ba4c10dafe would be built"
    ]


def params(**changes) -> dict:
    spec = rel.release_argument_spec()
    out = {key: option.get("default") for key, option in spec.items()}
    out.update(context="/srv/app", repository="127.0.0.1:5000/fleet/app")
    out.update(changes)
    return out


def test_build_params_give_image_build_every_option():
    built = rel.build_params(params(build_args={"A": "1"}, builder="pi"), "c5ba4c10dafe")
    assert set(built) == set(image_build_argument_spec())
    assert built["tags"] == ["127.0.0.1:5000/fleet/app:c5ba4c10dafe"]
    assert (built["build_args"], built["builder"], built["push"], built["load"]) == ({"A": "1"}, "pi", True, False)
    assert built["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def test_the_release_options_are_image_builds_where_they_share_a_name():
    build, release = image_build_argument_spec(), rel.release_argument_spec()
    for key in [*rel.BUILD_OPTIONS, "username", "password", "ca_cert", "validate_certs", "timeout"]:
        assert release[key]["type"] == build[key]["type"], key
    assert release["password"]["no_log"] is True


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"repository": "fleet/app"}, "must be an image repository with its registry host"),
        ({"repository": "127.0.0.1:5000/fleet/app:1.0"}, "it has a tag or a digest"),
        ({"tag": "-bad"}, "invalid tag '-bad'"),
        ({"moving_tags": ["latest", "a b"]}, "invalid tag 'a b'"),
        ({"platforms": []}, "platforms is empty"),
        ({"require_platforms": ["linux/sparc"]}, "(platforms or require_platforms)"),
    ],
)
def test_checked_params_refuse_before_anything_is_read(changes, says):
    with pytest.raises(rel.ReleaseError, match=says.replace("(", r"\(").replace(")", r"\)")):
        rel.checked_params(params(**changes))


def test_refusal_says_what_to_do():
    text = rel.refusal("127.0.0.1:5000/fleet/app:c5ba4c10dafe", "sha256:" + "1" * 64, FINGERPRINT)
    assert text.startswith("127.0.0.1:5000/fleet/app:c5ba4c10dafe already holds a build of other inputs")
    assert "release_tag_overwrite" in text and FINGERPRINT in text
