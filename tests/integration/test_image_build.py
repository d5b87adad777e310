"""fleet.multiarch.image_build on the real engines, registries and QEMU emulation.

- per_platform on engine 1 (Debian docker 20.10, classic image store, buildx docker driver: one platform per
  build), multi on engine 2 (trixie docker 26, containerd image store: one build exports the index);
- every index is read back with `docker buildx imagetools inspect` and `skopeo inspect --raw` and must list
  exactly the requested platforms; each platform's image is run with `--platform` and reports its `uname -m`;
- the fingerprint: no change, a context change, a build-arg change, a platform added, a second tag;
- errors: a failing RUN step (the step and its output), an unauthorised registry;
- secrets stay out of the log and the result; the unchanged path is timed against a cached buildx run.

Each test builds from a copy of tests/integration/contexts/* into its own repository fleet-test/build-*,
deleted afterwards.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg
from ansible_collections.fleet.multiarch.plugins.module_utils._build import BuildError
from ansible_collections.fleet.multiarch.plugins.module_utils._buildx import DockerCLI
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import (
    ImageBuilder,
    image_build_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool, RegistryClient

from .helpers import AnsweringRelay, playbook_results, purge_repository, run, run_module

CONTEXTS = Path(__file__).resolve().parent / "contexts"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
# qemu-arm emulates an ARMv7 CPU whatever the image's variant, so arm/v6 images say armv7l here too
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l", "linux/arm/v6": "armv7l"}
RUN_ID = uuid.uuid4().hex[:8]
MODULE = "fleet.multiarch.image_build"


@pytest.fixture(scope="module")
def plain(testenv):
    return RegistryClient(testenv["registry"])


@pytest.fixture
def repo(testenv, plain, request):
    """A repository of its own on the plain registry, purged afterwards."""
    name = f"fleet-test/build-{request.node.name.replace('_', '-')[5:40].strip('-')}-{RUN_ID}"
    yield f"{testenv['registry']}/{name}"
    purge_repository(plain, name)


def context(tmp_path: Path, name: str = "uname") -> Path:
    dest = tmp_path / name
    shutil.copytree(CONTEXTS / name, dest)
    return dest


def index_platforms(data: dict) -> dict:
    """``{os/arch[/variant]: digest}`` of an index's entries."""
    found = {}
    for desc in data.get("manifests") or []:
        p = desc["platform"]
        found["/".join(filter(None, [p["os"], p["architecture"], p.get("variant")]))] = desc["digest"]
    return found


def skopeo_platforms(ref: str) -> tuple:
    proc = run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"])
    data = json.loads(proc.stdout)
    return index_platforms(data), "sha256:" + hashlib.sha256(proc.stdout.encode()).hexdigest(), data


def imagetools_platforms(ref: str, env: dict | None = None) -> dict:
    proc = run(["docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", ref], env=env)
    data = json.loads(proc.stdout)
    return {
        "/".join(filter(None, [m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")])): m[
            "digest"
        ]
        for m in data["manifests"]
    }


def check_published(ref: str, result: dict, platforms: list, env: dict | None = None) -> None:
    """skopeo and imagetools see exactly the platforms; each image runs and says its machine."""
    found, digest, data = skopeo_platforms(ref)
    assert digest == result["digest"]
    assert found == result["platform_digests"]
    assert sorted(found) == sorted(platforms)
    assert data["annotations"]["fleet.multiarch.build.fingerprint"] == result["fingerprint"]
    assert imagetools_platforms(ref, env) == found
    name = ref.rsplit(":", 1)[0]
    for platform in platforms:
        proc = run(["docker", "run", "--rm", "--platform", platform, f"{name}@{found[platform]}"], env=env)
        assert proc.stdout.strip().splitlines()[-1] == UNAME[platform], platform


def build(args: dict, **kwargs) -> dict:
    result = run_module(MODULE, args, **kwargs)
    assert not result.get("failed"), result.get("msg")
    return result


# --------------------------------------------------------------------------- per_platform, classic store


def test_per_platform_on_the_classic_store_and_the_fingerprint(testenv, repo, tmp_path):
    ctx = context(tmp_path)
    ref = f"{repo}:1.0"
    args = {"context": str(ctx), "platforms": PLATFORMS, "tags": [ref], "build_args": {"GREETING": RUN_ID}}

    check = build(args, check_mode=True)
    assert check["changed"] is True and check["built"] is False and check["digest"] == ""

    first = build(args)
    assert first["changed"] is True and first["built"] is True
    assert first["strategy"] == "per_platform"
    assert "classic image store" in first["strategy_reason"]
    assert Path(first["log_path"]).is_file()
    assert "[linux/arm64] #" in Path(first["log_path"]).read_text()
    own = first["fingerprint"][len("sha256:") :][:12]  # per-platform tags of this build's inputs alone
    assert first["staging_tags"] == sorted(f"{ref}-build-{own}-{p.replace('/', '-')}" for p in PLATFORMS)
    check_published(ref, first, PLATFORMS)

    for check_mode in (True, False):
        again = build(args, check_mode=check_mode)
        assert again["changed"] is False and again["built"] is False
        assert again["digest"] == first["digest"]
        assert again["log_path"] == ""

    # files the .dockerignore leaves out change nothing; a file that is sent does
    (ctx / "notes.tmp").write_text("not sent\n")
    assert build(args)["changed"] is False
    (ctx / "app.txt").write_text(f"version 2 {RUN_ID}\n")
    assert build(args, check_mode=True)["changed"] is True
    changed_context = build(args)
    assert changed_context["built"] is True and changed_context["digest"] != first["digest"]

    changed_arg = build({**args, "build_args": {"GREETING": "other"}})
    assert changed_arg["built"] is True
    assert changed_arg["fingerprint"] != changed_context["fingerprint"]

    four = [*PLATFORMS, "linux/arm/v6"]
    added = build({**args, "build_args": {"GREETING": "other"}, "platforms": four}, diff=True)
    assert added["built"] is True
    assert added["diff"]["before"]["platforms"] == sorted(PLATFORMS)
    check_published(ref, added, four)


def test_several_tags_get_the_same_index(testenv, repo, tmp_path):
    ctx = context(tmp_path)
    tags = [f"{repo}:2.0", f"{repo}:latest"]
    args = {"context": str(ctx), "platforms": ["linux/arm64", "linux/amd64"], "tags": tags}
    first = build(args)
    for tag in tags:
        assert skopeo_platforms(tag)[1] == first["digest"]
    # a tag that lost the index gets it back without a build
    client = RegistryClient(testenv["registry"])
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})
    client.put_manifest(repo.split("/", 1)[1], "latest", body.encode(), "application/vnd.oci.image.index.v1+json")
    again = build(args)
    assert again["changed"] is True and again["built"] is False
    assert skopeo_platforms(tags[1])[1] == first["digest"]
    assert build(args)["changed"] is False


# --------------------------------------------------------------------------- multi, containerd store


def test_multi_on_the_containerd_store(testenv, repo, tmp_path):
    engine = testenv["engines"]["containerd"]["docker_host"]
    ctx = context(tmp_path)
    ref = f"{repo}:1.0"
    args = {
        "context": str(ctx),
        "platforms": PLATFORMS,
        "tags": [ref],
        "docker_host": engine,
        "build_args": {"GREETING": RUN_ID},
        "annotations": {"org.opencontainers.image.version": "1.0"},
    }
    first = build(args)
    assert first["strategy"] == "multi"
    assert "containerd image store" in first["strategy_reason"]
    check_published(ref, first, PLATFORMS, env={**os.environ, "DOCKER_HOST": engine})
    data = skopeo_platforms(ref)[2]
    assert data["annotations"]["org.opencontainers.image.version"] == "1.0"
    assert not [m for m in data["manifests"] if m["platform"]["os"] == "unknown"]  # no attestations by default
    again = build(args)
    assert again["changed"] is False and again["strategy"] == ""
    # the fingerprint does not depend on the engine or strategy: engine 1 sees the same image as current
    assert build({**args, "docker_host": testenv["engines"]["classic"]["docker_host"]})["changed"] is False


def test_one_platform_pushed_as_one_image_keeps_its_annotations(testenv, repo, tmp_path):
    """strategy multi with one platform pushes an image manifest, not an index: the annotations go on it."""
    engine = testenv["engines"]["containerd"]["docker_host"]
    ref = f"{repo}:one"
    args = {
        "context": str(context(tmp_path)),
        "platforms": ["linux/arm64"],
        "tags": [ref],
        "docker_host": engine,
        "strategy": "multi",
        "annotations": {"org.opencontainers.image.version": "1.0"},
    }
    result = build(args)
    data = skopeo_platforms(ref)[2]
    assert "manifests" not in data and data["mediaType"] in reg.IMAGE_TYPES, data["mediaType"]
    assert data["annotations"]["org.opencontainers.image.version"] == "1.0"
    assert result["platform_digests"] == {"linux/arm64": result["digest"]}
    assert build(args)["changed"] is False


@pytest.mark.parametrize("case", [("containerd", "multi"), ("classic", "per_platform")], ids=("multi", "per_platform"))
def test_concurrent_builds_of_one_tag_report_only_their_own_index(testenv, repo, plain, tmp_path, case):
    """Issue 26: two multi builds of one tag at once on the containerd store both reported the same digest.

    buildx pushed its own index, then pushed again, with docker, whatever image held the tag's name in the
    engine at that moment, and took that push's digest as the build's. per_platform on the classic store
    shared its per-platform staging tags the same way. Now each result is this build's index (its
    fingerprint, its platforms, its images) or a failure naming both digests; the tag holds one complete index.
    """
    engine, strategy = case
    ctx = context(tmp_path)
    ref = f"{repo}:race"
    args = {"context": str(ctx), "platforms": PLATFORMS, "tags": [ref], "force": True, "strategy": strategy}
    args["docker_host"] = testenv["engines"][engine]["docker_host"]
    repository = repo.split("/", 1)[1]
    for attempt in range(3):
        greetings = [f"a{attempt}-{RUN_ID}", f"b{attempt}-{RUN_ID}"]
        results = parallel(lambda g: run_module(MODULE, {**args, "build_args": {"GREETING": g}}), greetings)
        held = plain.get_manifest(repository, "race")
        assert held.media_type in reg.INDEX_TYPES, (held.media_type, [r.get("msg") for r in results])
        fingerprints = {r["fingerprint"] for r in results}
        assert len(fingerprints) == 2
        assert held.data["annotations"]["fleet.multiarch.build.fingerprint"] in fingerprints
        assert len([m for m in held.data["manifests"] if m["platform"]["os"] == "linux"]) == len(PLATFORMS)
        for result in results:
            assert result["changed"] is True, result
            own = plain.get_manifest(repository, result["digest"])  # what the result calls its build
            assert own.data["annotations"]["fleet.multiarch.build.fingerprint"] == result["fingerprint"]
            assert index_platforms(own.data) == result["platform_digests"]
            for digest in result["platform_digests"].values():  # each image is this build's too
                config = json.loads(
                    plain.get_blob(repository, plain.get_manifest(repository, digest).data["config"]["digest"])
                )
                assert config["config"]["Labels"]["fleet.multiarch.build.fingerprint"] == result["fingerprint"]
            if result.get("failed"):
                assert "another build pushed to the same tag" in result["msg"], result["msg"]
                assert result["digest"] in result["msg"] and held.digest in result["msg"]
        ok = [r for r in results if not r.get("failed")]
        assert ok, [r["msg"] for r in results]
        assert len({r["digest"] for r in results}) == 2, [r["digest"] for r in results]
        assert held.digest in {r["digest"] for r in ok}
    # the read-back that catches the race when the other build's push lands after this one's: the tag holds
    # the other build's index now, as it does when the other build tags it between this push and the read
    other = next(r for r in results if r["digest"] != held.digest)
    with patch_module_args({**args, "build_args": {}}):
        module = AnsibleModule(argument_spec=image_build_argument_spec(), supports_check_mode=True)
    builder = ImageBuilder(module, DockerCLI.from_module(module), ClientPool(module.params, testenv["registry"]))
    builder.result["fingerprint"] = other["fingerprint"]
    with pytest.raises(BuildError, match="another build pushed to the same tag") as caught:
        builder.confirm_tag(other["digest"])
    assert held.digest in str(caught.value) and other["digest"] in str(caught.value)


def test_a_push_the_registry_breaks_off_is_pushed_again(testenv, repo, plain, tmp_path):
    """A registry:2 answers 500 now and then when writers of one tag meet: CI saw it answer the engine's HEAD
    of the build's tag while the containerd store pushed the index's manifests under that tag at once, and the
    whole build failed. A relay in front of the real registry answers 500 to that request once: the module
    pushes again (the build comes from the cache) and warns. When the registry keeps answering 500, the task
    fails after three attempts naming the answer, changed false, the tag untouched."""
    host, port = testenv["registry"].split(":")
    # the engine's own push (buildkit's HEAD of the tag before its PUT tolerates an error)
    build_head = re.compile(
        rb"HEAD /v2/\S+/manifests/[^/\s]*-build-[0-9a-f]{12}\S* HTTP/1\.1\r\n(?:[^\r\n]+\r\n)*?User-Agent: docker/"
    )
    relay = AnsweringRelay((host, int(port)), lambda head: bool(build_head.search(head)), count=1)
    repository = repo.split("/", 1)[1]
    ref = f"127.0.0.1:{relay.port}/{repository}:1"
    args = {
        "context": str(context(tmp_path)),
        "platforms": ["linux/amd64", "linux/arm64"],
        "tags": [ref],
        "docker_host": testenv["engines"]["containerd"]["docker_host"],
        "strategy": "multi",
    }
    try:
        relay.armed = True
        first = build(args)
        assert relay.answered == 1
        assert first["changed"] is True
        assert [w for w in first.get("warnings", []) if "answered 500 Internal Server Error" in w], first
        assert plain.head_manifest(repository, "1")["digest"] == first["digest"]
        relay.left = 10
        broken = run_module(MODULE, {**args, "force": True})
        assert broken["failed"] is True and broken["changed"] is False, broken
        attempts = Path(broken["log_path"]).read_text().count(" docker buildx build ")
        assert attempts == 3 and relay.answered >= 1 + attempts, (attempts, relay.answered)
        assert "500 Internal Server Error" in broken["msg"] and "3 times" in broken["msg"], broken["msg"]
        assert plain.head_manifest(repository, "1")["digest"] == first["digest"]
    finally:
        relay.die()


# --------------------------------------------------------------------------- errors and secrets


def test_a_failing_run_step_names_the_step_and_its_output(testenv, repo, tmp_path):
    ctx = context(tmp_path, "fails")
    result = run_module(MODULE, {"context": str(ctx), "platforms": ["linux/arm64"], "tags": [f"{repo}:1"]})
    assert result["failed"] is True
    assert "RUN echo" in result["step"] and "exit 3" in result["step"]
    assert result["log_tail"] == ["the test suite failed on aarch64"]
    assert "failed at step" in result["msg"] and result["log_path"] in result["msg"]
    assert Path(result["log_path"]).is_file()


def test_missing_dockerfile_and_unknown_platform(repo, tmp_path):
    ctx = context(tmp_path)
    result = run_module(MODULE, {"context": str(ctx), "dockerfile": "Nope", "platforms": ["arm64"], "tags": [repo]})
    assert result["failed"] is True and "Nope does not exist" in result["msg"]
    result = run_module(MODULE, {"context": str(ctx), "platforms": ["linux/arm/v9"], "tags": [repo]})
    assert result["failed"] is True and "unknown platform 'linux/arm/v9'" in result["msg"]


def test_unauthorised_registry_fails_before_building(testenv, tmp_path):
    ctx = context(tmp_path)
    conf = testenv["registry_tls"]
    result = run_module(
        MODULE,
        {
            "context": str(ctx),
            "platforms": ["linux/amd64"],
            "tags": [f"{conf['address']}/fleet-test/build-auth-{RUN_ID}:1"],
            "ca_cert": conf["ca_file"],
            "docker_config": str(tmp_path / "empty-docker-config"),
        },
    )
    assert result["failed"] is True
    assert "refused the request anonymously" in result["msg"]
    assert result["log_path"] == ""


def test_secrets_reach_the_build_but_not_the_log(testenv, repo, tmp_path):
    ctx = tmp_path / "secret"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        # secrets are not in BuildKit's cache key: the ARG makes this run's step new
        "FROM busybox\nARG RUN_ID\n"
        "RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -c1-64 > /token.sum\n"
        'CMD ["cat", "/token.sum"]\n'
    )
    value = f"s3cret-{RUN_ID}"
    result = build(
        {
            "context": str(ctx),
            "platforms": ["linux/amd64"],
            "tags": [f"{repo}:1"],
            "secrets": [{"id": "token", "value": value}],
            "build_args": {"RUN_ID": RUN_ID},
        }
    )
    assert value not in json.dumps(result)
    assert value not in Path(result["log_path"]).read_text()
    name = f"{repo}@{result['platform_digests']['linux/amd64']}"
    out = run(["docker", "run", "--rm", "--platform", "linux/amd64", name]).stdout.strip()
    assert out == hashlib.sha256(value.encode()).hexdigest()


def test_a_secret_the_dockerfile_prints_is_masked_everywhere(testenv, repo, tmp_path):
    """Issue 26: a failing step that prints its secrets left them in msg, log_tail and a 0644 log file."""
    ctx = tmp_path / "leak"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nARG RUN_ID\n"
        "RUN --mount=type=secret,id=a --mount=type=secret,id=b --mount=type=secret,id=c"
        " cat /run/secrets/a /run/secrets/b /run/secrets/c && exit 3\n"
    )
    values = {"a": f"value-{RUN_ID}", "b": f"from-env-{RUN_ID}", "c": f"from-file-{RUN_ID}"}
    (tmp_path / "c.txt").write_text(values["c"] + "\n")
    playbook = tmp_path / "leak.yml"
    task = {
        "context": str(ctx),
        "platforms": ["linux/amd64"],
        "tags": [f"{repo}:1"],
        "build_args": {"RUN_ID": RUN_ID},
        "secrets": [
            {"id": "a", "value": values["a"]},
            {"id": "b", "env": "FLEET_TEST_SECRET"},
            {"id": "c", "file": str(tmp_path / "c.txt")},
        ],
    }
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Leak", "fleet.multiarch.image_build": task, "environment": {"FLEET_TEST_SECRET": values["b"]}}
            ],
        }
    ]
    playbook.write_text(json.dumps(play))
    [result] = playbook_results(playbook)
    assert result.get("failed") is True, result
    assert result["changed"] is False
    assert "exit 3" in result["step"] or "exit code: 3" in result["msg"]
    log = Path(result["log_path"])
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    text = log.read_text()
    assert "********" in text  # the step's output is there, masked
    for value in values.values():
        assert value not in json.dumps(result), value
        assert value not in text, value


def test_inputs_refused_before_anything_with_what_is_wrong(testenv, repo, tmp_path):
    ctx = context(tmp_path)
    args = {"context": str(ctx), "platforms": ["linux/amd64"], "tags": [f"{repo}:1"]}
    missing = run_module(MODULE, dict(args, secrets=[{"id": "token", "file": str(tmp_path / "nope.txt")}]))
    assert missing.get("failed") is True and missing.get("changed") is False, missing
    assert f"secrets[0] (token): the file {tmp_path / 'nope.txt'} does not exist" in missing["msg"]
    folder = run_module(MODULE, dict(args, log_path=str(tmp_path)))
    assert folder.get("failed") is True and folder.get("changed") is False, folder
    assert f"log_path {tmp_path} is a directory" in folder["msg"]
    accented = run_module(MODULE, dict(args, tags=[f"{repo}:été"]))
    assert accented.get("failed") is True and accented.get("changed") is False, accented
    assert "invalid tag 'été'" in accented["msg"] and "ASCII" in accented["msg"]
    assert not reg.RegistryClient(testenv["registry"]).list_tags(repo.split("/", 1)[1])


# --------------------------------------------------------------------------- speed of the unchanged path


class Unavailable(http.server.BaseHTTPRequestHandler):
    """A registry that answers 503 to everything, and counts the requests."""

    def answer(self):
        self.server.seen.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = answer

    def log_message(self, *args):
        pass


def test_an_unavailable_registry_costs_one_retry_cycle(tmp_path):
    """Issue 26: with the action plugin, a registry answering 503 ran the whole retry cycle twice (the controller's
    check, then the module's): 8 requests. The controller's failure is the task's answer: 4 requests (one try and
    three retries), answered by the controller, nothing built."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_port}"
        args = {
            "context": str(context(tmp_path)),
            "platforms": ["linux/amd64"],
            "tags": [f"{address}/fleet-test/app:1"],
        }
        result = run_module(MODULE, args)
    finally:
        server.shutdown()
        server.server_close()
    assert result.get("failed") and result["changed"] is False, result
    assert f"{address} answered HTTP 503" in result["msg"], result["msg"]
    assert result["built"] is False
    assert server.seen == ["GET /v2/fleet-test/app/manifests/1"] * 4


def test_unchanged_path_is_much_faster_than_a_cached_buildx_run(testenv, repo, tmp_path):
    """Reference: what a script does to publish the same thing on engine 1, fully cached."""
    ctx = context(tmp_path)
    ref = f"{repo}:1.0"
    args = {"context": str(ctx), "platforms": PLATFORMS, "tags": [ref], "base_image_registry": testenv["registry"]}
    build(args)
    refs = []
    started = time.monotonic()
    for platform in PLATFORMS:
        tag = f"{ref}-ref-{platform.replace('/', '-')}"
        run(
            ["docker", "buildx", "build", "--builder", "default", "--platform", platform, "--provenance", "false",
             "--output", f"type=image,name={tag},push=true", str(ctx)]
        )  # fmt: skip
        refs.append(tag)
    run(["docker", "buildx", "imagetools", "create", "-t", f"{ref}-ref", *refs])
    cached = time.monotonic() - started
    again = build(args)
    assert again["changed"] is False
    print(f"unchanged path {again['seconds']:.3f} s in the module; cached buildx + imagetools {cached:.2f} s")
    assert again["seconds"] * 5 < cached
