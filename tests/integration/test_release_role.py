# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release role against the real engine and registry, with the example application.

A copy of docs/examples/app in a git repository of its own is released for linux/amd64, linux/arm64 and
linux/arm/v7 into a repository of its own on the plain registry (purged afterwards):

- the first run builds, pushes under the commit, passes the gate, moves `latest` and `1.0`, and writes the
  record; the record's index and per-platform digests are checked against the registry's HTTP API (not the
  collection's client), and the moving tags must serve the same index digest;
- the second run reports changed=0 and leaves the record file alone;
- new inputs under the same commit are refused (the immutable tag would change);
- a gate that requires a platform that was not built fails with a clear message, and neither the moving
  tags nor the record move.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

from .helpers import VENV_BIN, DyingRelay, play_recap, purge_repository, run, run_playbook

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "docs" / "examples" / "app"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
INDEX_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
PLAYBOOK = """\
- name: Release the example application
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleet.multiarch.release
"""


@pytest.fixture
def repo(testenv):
    """A repository of its own on the plain registry, purged afterwards."""
    name = f"fleet-test/release-{uuid.uuid4().hex[:8]}"
    yield f"{testenv['registry']}/{name}"
    purge_repository(RegistryClient(testenv["registry"]), name)


@pytest.fixture
def app(tmp_path: Path) -> tuple:
    """The example application in a fresh git repository with one commit: (context, commit)."""
    context = tmp_path / "app"
    shutil.copytree(APP, context)
    git = ["git", "-C", str(context), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "app"])
    commit = run([*git, "rev-parse", "HEAD"]).stdout.strip()
    return context, commit


def registry_manifest(registry: str, repository: str, ref: str) -> tuple:
    """(digest, manifest) of repository:ref, straight from the registry's HTTP API."""
    resp = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{ref}", headers={"Accept": INDEX_TYPES}, timeout=30
    )
    resp.raise_for_status()
    return resp.headers["Docker-Content-Digest"], resp.json()


def recap(proc) -> dict:
    found = play_recap(proc.stdout)
    assert "localhost" in found, proc.stdout[-3000:]
    return found["localhost"]


def release(tmp_path: Path, **variables):
    book = tmp_path / "release.yml"
    book.write_text(PLAYBOOK)
    return run_playbook(book, variables, check=False)


def test_release_gate_promotion_record_and_idempotence(testenv, repo, app, tmp_path):
    context, commit = app
    registry, repository = repo.split("/", 1)
    record_path = tmp_path / "releases" / "app.json"
    base = {
        "release_context": str(context),
        "release_repository": repo,
        "release_name": "app",
        "release_platforms": PLATFORMS,
        "release_moving_tags": ["latest", "1.0"],
        "release_build_args": {"BASE_IMAGE": f"{testenv['registry']}/library/busybox:latest", "APP_VERSION": "1.0"},
        "release_base_image_registry": testenv["registry"],
        "release_record_path": str(record_path),
    }

    # 1. the first release: build, gate, moving tags, record
    first = release(tmp_path, **base)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first)["changed"] >= 3  # the build, two moving tags, the record
    record = json.loads(record_path.read_text())
    for key in ("schema", "name", "repository", "tag", "moving_tags", "index_digest", "platforms", "fingerprint"):
        assert key in record, key
    assert record["schema"] == 1 and record["name"] == "app" and record["repository"] == repo
    assert record["tag"] == commit[:12] and record["git_commit"] == commit and record["git_dirty"] is False
    assert record["moving_tags"] == ["latest", "1.0"]
    assert record["changed"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["created"])
    assert record["fingerprint"].startswith("sha256:")
    assert sorted(record["platforms"]) == sorted(PLATFORMS)
    assert all(size > 0 for size in record["sizes"].values())

    digest, index = registry_manifest(registry, repository, record["tag"])
    assert digest == record["index_digest"]
    served = {
        "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))): m[
            "digest"
        ]
        for m in index["manifests"]
    }
    assert served == record["platforms"]
    for platform, platform_digest in record["platforms"].items():
        assert registry_manifest(registry, repository, platform_digest)[0] == platform_digest, platform
    for tag in ("latest", "1.0"):
        assert registry_manifest(registry, repository, tag)[0] == record["index_digest"], tag
    assert f"{'platform':14} {'digest':71}" in first.stdout  # the summary table

    # 2. nothing changed: changed=0, the record file is not rewritten
    text, mtime = record_path.read_text(), record_path.stat().st_mtime_ns
    second = release(tmp_path, **base)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    assert record_path.read_text() == text and record_path.stat().st_mtime_ns == mtime
    assert " unchanged" in second.stdout

    # 3. other inputs under the same commit would change the immutable tag: refused before building
    other = {**base, "release_build_args": {**base["release_build_args"], "APP_VERSION": "2.0"}}
    refused = release(tmp_path, **other)
    assert refused.returncode != 0
    assert f"{repo}:{commit[:12]} already holds a build of other inputs" in refused.stdout
    assert registry_manifest(registry, repository, commit[:12])[0] == record["index_digest"]

    # 4. the gate requires a platform that was not built: a clear failure, the moving tags do not move
    gated = release(tmp_path, **other, release_tag="gate-test", release_require_platforms=[*PLATFORMS, "linux/riscv64"])
    assert gated.returncode != 0
    assert "Release gate failed" in gated.stdout and "linux/riscv64" in gated.stdout, gated.stdout[-4000:]
    assert "still point where they pointed before" in gated.stdout
    new_digest = registry_manifest(registry, repository, "gate-test")[0]  # built and pushed, not promoted
    assert new_digest != record["index_digest"]
    for tag in ("latest", "1.0"):
        assert registry_manifest(registry, repository, tag)[0] == record["index_digest"], tag
    assert record_path.read_text() == text


def test_every_variable_is_documented_with_its_default():
    role = ROOT / "roles" / "release"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    required = {name for name, spec in options.items() if spec.get("required")}
    assert required == {"release_context", "release_repository"}
    assert sorted(defaults) == sorted(set(options) - required)
    for name, value in defaults.items():
        assert name.startswith("release_"), name
        assert options[name].get("description"), f"{name} has no description"
        assert options[name]["default"] == value, f"{name}: spec default differs from defaults/main.yml"


@pytest.mark.parametrize("playbook", ["release.yml", "demo.yml"])
def test_playbook_syntax(playbook):
    proc = run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(ROOT / "playbooks" / playbook)],
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


INDEX_PUT = re.compile(
    rb"PUT /v2/\S+/manifests/\S+ HTTP/1\.1\r\n(?:[^\r\n]*\r\n)*?content-type: *application/vnd\."
    rb"(?:oci\.image\.index|docker\.distribution\.manifest\.list)",
    re.IGNORECASE,
)


def test_registry_dying_between_the_platform_images_and_the_index(testenv, app, tmp_path):
    """The registry dies as the index is sent: the release fails, the moving tags and the record stay where they
    were, and the next run completes."""
    context, _commit = app
    registry = testenv["registry"]
    host, port = registry.split(":")
    relay = DyingRelay((host, int(port)), INDEX_PUT.search)
    name = f"fleet-test/release-dies-{uuid.uuid4().hex[:8]}"
    repo = f"127.0.0.1:{relay.port}/{name}"
    record_path = tmp_path / "releases" / "app.json"
    base = {
        "release_context": str(context),
        "release_repository": repo,
        "release_name": "app",
        "release_platforms": ["linux/amd64", "linux/arm64"],
        "release_moving_tags": ["latest"],
        "release_build_args": {"BASE_IMAGE": f"{registry}/library/busybox:latest", "APP_VERSION": "1.0"},
        "release_base_image_registry": registry,
        "release_record_path": str(record_path),
    }
    try:
        first = release(tmp_path, **base, release_tag="1.0")
        assert first.returncode == 0, first.stdout[-4000:]
        record = record_path.read_text()
        latest = registry_manifest(registry, name, "latest")[0]

        relay.armed = True
        second = {
            **base,
            "release_tag": "2.0",
            "release_build_args": {**base["release_build_args"], "APP_VERSION": "2.0"},
        }
        died = release(tmp_path, **second)
        assert relay.died.is_set(), died.stdout[-4000:]
        assert died.returncode != 0
        assert f"127.0.0.1:{relay.port}" in died.stdout, died.stdout[-4000:]
        # nothing moved: the moving tag, the record; the new tag was never written
        assert registry_manifest(registry, name, "latest")[0] == latest
        assert record_path.read_text() == record
        assert requests.head(f"http://{registry}/v2/{name}/manifests/2.0", timeout=30).status_code == 404

        relay.revive()
        again = release(tmp_path, **second)
        assert again.returncode == 0, again.stdout[-4000:]
        new = json.loads(record_path.read_text())
        assert new["tag"] == "2.0" and new["index_digest"] != latest
        assert registry_manifest(registry, name, "latest")[0] == new["index_digest"]
    finally:
        relay.die()
        purge_repository(RegistryClient(registry), name)
