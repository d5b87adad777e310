# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release role against the real engine and registry, with the example application.

A copy of docs/examples/app in a git repository of its own is released for linux/amd64, linux/arm64 and
linux/arm/v7 into a repository of its own on the plain registry (purged afterwards):

- check mode first (it would build; nothing is pushed or written), then the release: it builds, pushes under the
  commit, passes the gate, moves `latest` and `1.0`, and writes the record, in one task; the record's index,
  per-platform digests and sizes are checked against the registry's HTTP API (not the collection's client), and
  the moving tags must serve the same index digest;
- check mode and a run again report changed=0, answered in the controller's process, and leave the record alone;
- new inputs under the same commit are refused (the immutable tag would change);
- a gate that requires a platform that was not built fails with a clear message, and neither the moving
  tags nor the record move;
- a moving tag that someone moved is moved back without a build; a new moving tag rewrites the record with its
  `created` kept; an untracked file makes the tag `<commit>-dirty-<fingerprint>`;
- a bad record file fails the task, naming the file, before anything is built;
- a registry that dies between the platform images and the index, or between the index and the moving tag,
  leaves the moving tag and the record alone, and the next run completes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

from .helpers import (
    VENV_BIN,
    DyingRelay,
    ansible_env,
    play_recap,
    playbook_argv,
    playbook_results,
    purge_repository,
    run,
    run_module,
)

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "docs" / "examples" / "app"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
INDEX_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
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


def release(tmp_path: Path, *options: str, **variables) -> tuple:
    """ansible-playbook with the role: (process, the release task's whole result)."""
    book = tmp_path / "release.yml"
    book.write_text(PLAYBOOK)
    results = tmp_path / "results.jsonl"
    results.unlink(missing_ok=True)
    argv = [*playbook_argv(book), *options, "-e", json.dumps(variables)]
    proc = run(argv, check=False, env={**ansible_env(), "FLEET_TEST_RESULT_FILE": str(results)})
    found = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    task = [r for r in found if "record_path" in r]
    assert task, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, task[-1]


def missing(registry: str, repository: str, ref: str) -> bool:
    """Whether repository:ref does not exist (with an Accept header: without one, registry:2 denies an index)."""
    accept = f"{INDEX_TYPES}, {IMAGE_TYPES}"
    resp = requests.head(f"http://{registry}/v2/{repository}/manifests/{ref}", headers={"Accept": accept}, timeout=30)
    assert resp.status_code in (200, 404), resp
    return resp.status_code == 404


def check_record(record: dict, repo: str, commit: str) -> None:
    """The first release's record, against the registry's HTTP API (not the collection's client)."""
    registry, repository = repo.split("/", 1)
    for key in ("schema", "name", "repository", "tag", "moving_tags", "index_digest", "platforms", "fingerprint"):
        assert key in record, key
    assert record["schema"] == 1 and record["name"] == "app" and record["repository"] == repo
    assert record["tag"] == commit[:12] and record["git_commit"] == commit and record["git_dirty"] is False
    assert record["moving_tags"] == ["latest", "1.0"]
    assert record["changed"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["created"])
    assert record["fingerprint"].startswith("sha256:")
    assert sorted(record["platforms"]) == sorted(PLATFORMS)
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
        found, manifest = registry_manifest(registry, repository, platform_digest)
        assert found == platform_digest, platform
        size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
        assert record["sizes"][platform] == size > 0, platform
    for tag in ("latest", "1.0"):
        assert registry_manifest(registry, repository, tag)[0] == record["index_digest"], tag


def move_tag(registry: str, repository: str, tag: str, source: str) -> None:
    """Point repository:tag at what repository:source holds, as another writer would (plain HTTP)."""
    held = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{source}", headers={"Accept": INDEX_TYPES}, timeout=30
    )
    put = requests.put(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        data=held.content,
        headers={"Content-Type": held.headers["Content-Type"]},
        timeout=30,
    )
    assert put.status_code == 201, put.text


@pytest.fixture
def released(testenv, repo, app, tmp_path) -> dict:
    """Check mode before the first release, then the first release, each checked: what the tests go on from."""
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

    # 0. check mode before the first release: it would build; nothing is pushed or written
    proc, result = release(tmp_path, "--check", **base)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert result["changed"] and not result["built"] and result["digest"] == "", result
    assert result["tag"] == commit[:12] and result["record_changed"] and result["record"] == {}
    assert result["answered_by"] == "controller"  # check mode is answered in the controller's process
    assert f"app  {repo}:{commit[:12]} would be built (check mode)" in proc.stdout
    assert missing(registry, repository, commit[:12]) and missing(registry, repository, "latest")
    assert not record_path.exists()

    # 1. the first release: build, gate, moving tags, record; one task changed
    first, result = release(tmp_path, **base)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first)["changed"] == 1, first.stdout[-4000:]
    assert result["built"] and result["moved_tags"] == ["latest", "1.0"] and result["record_changed"]
    assert result["answered_by"] == "module"
    record = json.loads(record_path.read_text())
    assert result["record"] == record
    check_record(record, repo, commit)
    assert "password" not in record_path.read_text()
    assert f"{'platform':14} {'digest':71}" in first.stdout  # the summary table
    assert f"index {record['index_digest']} <- latest, 1.0" in first.stdout
    text, mtime = record_path.read_text(), record_path.stat().st_mtime_ns
    return {"base": base, "record": record, "text": text, "mtime": mtime, "record_path": record_path}


def test_release_again_check_and_apply_refusal_and_gate(released, repo, app, tmp_path):
    """After the first release: check and apply change nothing; other inputs are refused; a failing gate."""
    base, record, record_path, text = released["base"], released["record"], released["record_path"], released["text"]
    context, commit = app
    registry, repository = repo.split("/", 1)

    # 2. check mode again, and 3. apply again: nothing to do, answered on the controller, the file untouched. A
    # tracked file touched (same content) makes `git status` want to refresh the index, a file of this context
    # (.git is in it): the release's own git status must not, or the next run would see other inputs
    dockerfile = context / "Dockerfile"
    later = dockerfile.stat().st_mtime + 60
    os.utime(dockerfile, (later, later))
    index = (context / ".git" / "index").read_bytes()
    for options in (("--check", "--diff"), ()):
        again, result = release(tmp_path, *options, **base)
        assert again.returncode == 0, again.stdout[-4000:]
        assert recap(again)["changed"] == 0, again.stdout[-4000:]
        assert not result["changed"] and not result["built"] and result["moved_tags"] == []
        assert result["answered_by"] == "controller", result
        assert not result["record_changed"] and result["record"]["created"] == record["created"]
        assert result["record"]["changed"] is False  # this run's; the file keeps the run that wrote it
        assert record_path.read_text() == text and record_path.stat().st_mtime_ns == released["mtime"]
        assert " unchanged" in again.stdout
        assert (context / ".git" / "index").read_bytes() == index

    # 4. other inputs under the same commit would change the immutable tag: refused before building
    other = {**base, "release_build_args": {**base["release_build_args"], "APP_VERSION": "2.0"}}
    refused, result = release(tmp_path, **other)
    assert refused.returncode != 0 and result["failed"] and not result["changed"]
    assert f"{repo}:{commit[:12]} already holds a build of other inputs" in result["msg"]
    assert registry_manifest(registry, repository, commit[:12])[0] == record["index_digest"]

    # 5. the gate requires a platform that was not built: a clear failure, the moving tags do not move
    gate = {**other, "release_tag": "gate-test", "release_require_platforms": [*PLATFORMS, "linux/riscv64"]}
    gated, result = release(tmp_path, **gate)
    assert gated.returncode != 0 and result["failed"]
    assert result["changed"]  # the index was pushed under the new immutable tag
    assert "Release gate failed" in result["msg"] and "linux/riscv64" in result["msg"], result["msg"]
    assert "still point where they pointed before" in result["msg"]
    gated_digest = registry_manifest(registry, repository, "gate-test")[0]  # built and pushed, not promoted
    assert gated_digest != record["index_digest"]
    for tag in ("latest", "1.0"):
        assert registry_manifest(registry, repository, tag)[0] == record["index_digest"], tag
    assert record_path.read_text() == text


def test_release_promotion_without_a_build_record_and_dirty_tag(released, repo, app, tmp_path):
    """After the first release: a moved moving tag is moved back without a build, a new moving tag rewrites the record
    (``created`` kept), an untracked file makes a dirty tag."""
    base, record, record_path, text = released["base"], released["record"], released["record_path"], released["text"]
    context, commit = app
    registry, repository = repo.split("/", 1)
    other = {
        **base,
        "release_tag": "other",
        "release_moving_tags": [],
        "release_build_args": {**base["release_build_args"], "APP_VERSION": "other"},
        "release_record_path": str(tmp_path / "other.json"),
    }
    assert release(tmp_path, **other)[0].returncode == 0

    # 6. someone moved `latest` away: the release builds nothing and moves it back; the record is the same
    move_tag(registry, repository, "latest", "other")
    proc, result = release(tmp_path, "--check", **base)
    assert proc.returncode == 0 and result["changed"] and result["moved_tags"] == ["latest"], result
    assert registry_manifest(registry, repository, "latest")[0] != record["index_digest"]
    proc, result = release(tmp_path, **base)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert result["changed"] and not result["built"] and result["moved_tags"] == ["latest"], result
    assert registry_manifest(registry, repository, "latest")[0] == record["index_digest"]
    assert not result["record_changed"] and record_path.read_text() == text

    # 7. another moving tag: the record is written again, its `created` kept (the same release)
    more = {**base, "release_moving_tags": ["latest", "1.0", "stable"]}
    proc, result = release(tmp_path, "--diff", **more)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert result["moved_tags"] == ["stable"] and result["record_changed"]
    rewritten = json.loads(record_path.read_text())
    assert rewritten["moving_tags"] == ["latest", "1.0", "stable"] and rewritten["created"] == record["created"]
    assert '"stable"' in result["diff"]["after"] and '"stable"' not in result["diff"]["before"]
    assert registry_manifest(registry, repository, "stable")[0] == record["index_digest"]

    # 8. an untracked file in the context: the tag becomes <commit>-dirty-<fingerprint> (check mode only)
    (context / "notes.txt").write_text("uncommitted\n")
    proc, result = release(tmp_path, "--check", **more)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert re.fullmatch(rf"{commit[:12]}-dirty-[0-9a-f]{{12}}", result["tag"]), result["tag"]
    assert result["changed"] and missing(registry, repository, result["tag"])


def test_the_controller_answers_an_unchanged_release_as_the_module_does(released, repo, tmp_path):
    """The action plugin answers an unchanged release in the controller's process; the module (kept there by a task
    ``environment``) gives the same answer, key by key, applied and in check mode with diff."""
    base = released["base"]
    args = {
        "context": base["release_context"],
        "repository": repo,
        "name": "app",
        "platforms": PLATFORMS,
        "moving_tags": base["release_moving_tags"],
        "build_args": base["release_build_args"],
        "base_image_registry": base["release_base_image_registry"],
        "record_path": base["release_record_path"],
    }
    tasks = [
        {"name": "Here", "fleet.multiarch.release": args},
        {"name": "In the module", "fleet.multiarch.release": args, "environment": {"FLEET_TEST": "1"}},
    ]
    playbook = tmp_path / "twice.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    compared = ("changed", "built", "tag", "digest", "moved_tags", "record", "record_changed", "record_path", "summary")
    build_keys = ("digest", "platform_digests", "fingerprint", "published_fingerprint", "base_images", "context")
    for check_mode, diff in ((False, False), (True, True)):
        here, there = playbook_results(playbook, check_mode=check_mode, diff=diff)
        assert not here["failed"] and not there["failed"], (here.get("msg"), there.get("msg"))
        assert (here["answered_by"], there["answered_by"]) == ("controller", "module")
        assert here["changed"] is False and here["record"] == {**released["record"], "changed": False}
        assert {k: here[k] for k in compared} == {k: there[k] for k in compared}
        assert {k: here["build"][k] for k in build_keys} == {k: there["build"][k] for k in build_keys}
        assert here.get("diff") == there.get("diff") and bool(here.get("diff")) is diff
    assert released["record_path"].read_text() == released["text"]


def test_a_bad_record_fails_before_anything_is_built(testenv, repo, app, tmp_path):
    context, _commit = app
    registry, repository = repo.split("/", 1)
    record_path = tmp_path / "app.json"
    for text, says in (("{not json", "is not JSON"), ('{"schema": 2}', "has schema 2")):
        record_path.write_text(text)
        result = run_module(
            "fleet.multiarch.release",
            {"context": str(context), "repository": repo, "record_path": str(record_path), "platforms": PLATFORMS},
        )
        assert result["failed"] and not result["changed"], result
        assert f"the release record {record_path}" in result["msg"] and says in result["msg"], result["msg"]
        assert record_path.read_text() == text
    assert missing(registry, repository, "latest")


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
LATEST_PUT = re.compile(rb"PUT /v2/\S+/manifests/latest HTTP/1\.1\r\n")


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(INDEX_PUT, id="between-the-platform-images-and-the-index"),
        pytest.param(LATEST_PUT, id="between-the-index-and-the-moving-tag"),
    ],
)
def test_registry_dying_during_a_release(testenv, app, tmp_path, when):
    """The registry dies as the index (or the moving tag) is sent: the release fails, the moving tag and the record
    stay where they were, and the next run completes (building nothing again when the index was published)."""
    context, _commit = app
    registry = testenv["registry"]
    host, port = registry.split(":")
    relay = DyingRelay((host, int(port)), when.search)
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
        first, _result = release(tmp_path, **base, release_tag="1.0")
        assert first.returncode == 0, first.stdout[-4000:]
        record = record_path.read_text()
        latest = registry_manifest(registry, name, "latest")[0]

        relay.armed = True
        second = {
            **base,
            "release_tag": "2.0",
            "release_build_args": {**base["release_build_args"], "APP_VERSION": "2.0"},
        }
        died, result = release(tmp_path, **second)
        assert relay.died.is_set(), died.stdout[-4000:]
        assert died.returncode != 0 and result["failed"], result
        assert f"127.0.0.1:{relay.port}" in result["msg"], result["msg"]
        assert result["changed"]  # the platform images (and the index) reached the registry
        # nothing moved: the moving tag, the record
        assert registry_manifest(registry, name, "latest")[0] == latest
        assert record_path.read_text() == record
        index_published = when is LATEST_PUT
        assert missing(registry, name, "2.0") is not index_published

        relay.revive()
        again, result = release(tmp_path, **second)
        assert again.returncode == 0, again.stdout[-4000:]
        assert result["built"] is not index_published, result  # a published index is not built again
        new = json.loads(record_path.read_text())
        assert new["tag"] == "2.0" and new["index_digest"] != latest
        assert registry_manifest(registry, name, "latest")[0] == new["index_digest"]
        assert registry_manifest(registry, name, "2.0")[0] == new["index_digest"]
    finally:
        relay.die()
        purge_repository(RegistryClient(registry), name)
