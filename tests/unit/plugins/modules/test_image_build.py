"""Unit tests for image_build's main(): the no-change path (no docker command at all), check mode, errors.

The registry is a small in-memory stand-in for the client (HEAD/GET of manifests and blobs, digests
computed from the bytes); the docker CLI is a stand-in that fails the test when called, so every test
here proves that deciding "nothing changed" runs no docker command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils import _reference
from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import ImageBuilder
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import parse_platform
from ansible_collections.fleet.multiarch.plugins.modules import image_build as mod

CONTEXT = Path(__file__).resolve().parents[3] / "integration" / "contexts" / "uname"
BUSYBOX_INDEX = Path(__file__).resolve().parents[2] / "fixtures" / "registry" / "busybox-index.json"
REPO = "fleet-test/build-unit"
TAG = f"127.0.0.1:5000/{REPO}:1"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


class FakeRegistry:
    """Manifests by (repository, ref); a tag and the digest of its bytes both find a manifest."""

    def __init__(self):
        self.manifests = {}
        self.requests = []

    def put(self, repository: str, tag: str, data: dict) -> str:
        body = json.dumps(data).encode()
        digest = _reference.compute_digest(body)
        self.manifests[(repository, tag)] = body
        self.manifests[(repository, digest)] = body
        return digest


class FakeClient:
    def __init__(self, registry: FakeRegistry, host: str):
        self.registry = host
        self.store = registry

    def head_manifest(self, repository, ref):
        self.store.requests.append(("HEAD", repository, ref))
        body = self.store.manifests.get((repository, ref))
        if body is None:
            return None
        return {
            "digest": _reference.compute_digest(body),
            "media_type": json.loads(body)["mediaType"],
            "size": len(body),
        }

    def get_manifest(self, repository, ref, accept=reg.MANIFEST_ACCEPT):
        self.store.requests.append(("GET", repository, ref))
        body = self.store.manifests.get((repository, ref))
        if body is None:
            raise _reference.RegistryError(f"{repository}:{ref} not found", status=404)
        data = json.loads(body)
        return reg.Fetched(data["mediaType"], _reference.compute_digest(body), body, data)

    def put_manifest(self, repository, ref, body, media_type):
        raise AssertionError("check mode and the no-change path push nothing")


class FakeCLI:
    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        raise AssertionError(f"deciding whether to build must not run docker (DockerCLI.{name})")


@pytest.fixture
def registry(monkeypatch):
    store = FakeRegistry()
    store.put("library/busybox", "latest", json.loads(BUSYBOX_INDEX.read_text()))
    monkeypatch.setattr(reg.ClientPool, "get", lambda self, host: FakeClient(store, host))
    monkeypatch.setattr(bx.DockerCLI, "from_module", classmethod(lambda cls, module: FakeCLI(module)))
    return store


def run_main(args: dict, capsys) -> dict:
    base = {"platforms": PLATFORMS, "tags": [TAG], "base_image_registry": "127.0.0.1:5000"}
    with patch_module_args({**base, **args}), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def publish(store: FakeRegistry, fingerprint: str, platforms: tuple = tuple(PLATFORMS), tag: str = "1") -> str:
    manifests = []
    for pos, platform in enumerate(platforms):
        obj = parse_platform(platform)
        manifests.append(
            {
                "mediaType": reg.OCI_MANIFEST,
                "digest": "sha256:" + f"{pos}" * 64,
                "size": 500,
                "platform": obj.to_dict(),
            }
        )
    data = {
        "schemaVersion": 2,
        "mediaType": reg.OCI_INDEX,
        "manifests": manifests,
        "annotations": {bd.FINGERPRINT_KEY: fingerprint},
    }
    return store.put(REPO, tag, data)


def first_fingerprint(capsys, tmp_path, **args) -> str:
    result = run_main({"context": str(tmp_path), "_ansible_check_mode": True, **args}, capsys)
    assert result["changed"] is True, result
    assert result["built"] is False
    return result["fingerprint"]


@pytest.fixture
def context(tmp_path):
    shutil.copytree(CONTEXT, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_unchanged_inputs_build_nothing_and_run_no_docker(registry, context, capsys):
    fp = first_fingerprint(capsys, context)
    digest = publish(registry, fp)
    registry.requests.clear()
    result = run_main({"context": str(context)}, capsys)
    assert result["changed"] is False, result
    assert result["built"] is False
    assert result["digest"] == digest
    assert result["platform_digests"]["linux/arm/v7"] == "sha256:" + "2" * 64
    # one HEAD for the base image, one GET for the published index: nothing else
    assert sorted(r[0] for r in registry.requests) == ["GET", "HEAD"]
    busybox = FakeClient(registry, "127.0.0.1:5000").head_manifest("library/busybox", "latest")["digest"]
    assert result["base_images"] == {"busybox": busybox}


@pytest.mark.parametrize(
    "change",
    [
        {"build_args": {"GREETING": "hi"}},
        {"platforms": [*PLATFORMS, "linux/arm/v6"]},
        {"labels": {"org.opencontainers.image.version": "2"}},
        {"target": "other"},
        {"attestations": True},
    ],
)
def test_a_changed_input_means_a_build(registry, context, capsys, change):
    publish(registry, first_fingerprint(capsys, context))
    result = run_main({"context": str(context), "_ansible_check_mode": True, "_ansible_diff": True, **change}, capsys)
    assert result["changed"] is True, result
    assert result["diff"]["before"]["fingerprint"] != result["diff"]["after"]["fingerprint"]


def test_context_change_and_ignored_files(registry, context, capsys):
    publish(registry, first_fingerprint(capsys, context))
    (context / "notes.tmp").write_text("ignored by .dockerignore\n")
    (context / "scratch").mkdir()
    (context / "scratch" / "junk").write_text("ignored too\n")
    assert run_main({"context": str(context)}, capsys)["changed"] is False
    (context / "app.txt").write_text("version 2\n")
    assert run_main({"context": str(context), "_ansible_check_mode": True}, capsys)["changed"] is True


def test_published_with_buildkit_attestations_is_current(registry, context, capsys):
    """An index of BuildKit's layout (the captured provenance index: images, then their attestation manifests,
    platform unknown/unknown) is read as manifest and manifest_info read it: the attestations serve no platform."""
    fp = first_fingerprint(capsys, context, attestations=True)
    provenance = json.loads((BUSYBOX_INDEX.parent / "buildkit-provenance-arm64-index.json").read_text())
    attestation = provenance["manifests"][1]
    images = [
        {"mediaType": reg.OCI_MANIFEST, "digest": "sha256:" + f"{pos}" * 64, "size": 500, "platform": p.to_dict()}
        for pos, p in enumerate(parse_platform(x) for x in PLATFORMS)
    ]
    attestations = [
        {**attestation, "annotations": {**attestation["annotations"], "vnd.docker.reference.digest": d["digest"]}}
        for d in images
    ]
    data = {
        "schemaVersion": 2,
        "mediaType": reg.OCI_INDEX,
        "manifests": images + attestations,
        "annotations": {bd.FINGERPRINT_KEY: fp},
    }
    digest = registry.put(REPO, "1", data)
    result = run_main({"context": str(context), "attestations": True}, capsys)
    assert result["changed"] is False, result
    assert result["digest"] == digest
    assert result["platform_digests"] == {p: images[pos]["digest"] for pos, p in enumerate(PLATFORMS)}


def test_published_with_other_platforms_is_not_current(registry, context, capsys):
    fp = first_fingerprint(capsys, context)
    publish(registry, fp, platforms=PLATFORMS[:2])  # same fingerprint, one platform missing
    assert run_main({"context": str(context), "_ansible_check_mode": True}, capsys)["changed"] is True


def test_a_new_base_image_digest_means_a_build(registry, context, capsys):
    publish(registry, first_fingerprint(capsys, context))
    data = json.loads(BUSYBOX_INDEX.read_text())
    data["manifests"] = data["manifests"][:3]
    registry.put("library/busybox", "latest", data)
    assert run_main({"context": str(context), "_ansible_check_mode": True}, capsys)["changed"] is True


def test_force_in_check_mode_reports_a_build(registry, context, capsys):
    publish(registry, first_fingerprint(capsys, context))
    result = run_main({"context": str(context), "force": True, "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True


def test_a_second_tag_without_the_index_is_a_change_without_a_build(registry, context, capsys):
    publish(registry, first_fingerprint(capsys, context))
    tags = [TAG, f"127.0.0.1:5000/{REPO}:latest"]
    result = run_main({"context": str(context), "tags": tags, "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True
    assert result["built"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"context": "/nonexistent/ctx"}, "the build context /nonexistent/ctx does not exist"),
        ({"dockerfile": "Missing.Dockerfile"}, "Missing.Dockerfile does not exist"),
        ({"platforms": ["linux/amd64", "linux/sparc99"]}, "unknown platform 'linux/sparc99'"),
        ({"tags": ["fleet/app:1"]}, "has no registry host"),
        ({"load": True}, "load works for one platform only"),
        ({"platform_builders": {"linux/s390x": "z"}}, "platform_builders names platforms that are not built"),
    ],
)
def test_clear_errors(registry, context, capsys, args, message):
    result = run_main({"context": str(context), **args}, capsys)
    assert result["failed"] is True
    assert message in result["msg"]


class CapturedBuilderCLI:
    """`docker info` and `docker buildx inspect` of engine 1 (captured); any other docker command fails the test."""

    FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "build"

    def __init__(self, module):
        self.module = module

    def inspect(self, name=None, bootstrap=False):
        return bx.parse_inspect((self.FIXTURES / "inspect-classic-default.txt").read_text())

    def run(self, args, *, check=True, what=None, data=None):
        assert args[0] == "info", f"no build may start: docker {' '.join(args)}"
        return 0, (self.FIXTURES / "info-classic.json").read_text(), ""


class BuildStarted(BaseException):
    """Raised where a build would start; not an Exception, so the module's error handling lets it through."""


@pytest.fixture
def captured_builder(monkeypatch):
    """The captured classic default builder (no linux/loong64 among its platforms); a build that starts raises."""
    monkeypatch.setattr(bx.DockerCLI, "from_module", classmethod(lambda cls, module: CapturedBuilderCLI(module)))

    def build(self, *args):
        raise BuildStarted

    monkeypatch.setattr(ImageBuilder, "build_per_platform", build)


@pytest.mark.usefixtures("registry", "captured_builder")
def test_a_platform_without_emulator_or_node_fails_before_building(context, capsys, monkeypatch):
    monkeypatch.setattr(ImageBuilder, "local_platforms", lambda self: ["linux/amd64", "linux/386"])
    result = run_main({"context": str(context), "platforms": ["linux/amd64", "linux/loong64"]}, capsys)
    assert result["failed"] is True
    assert "cannot build linux/loong64: no node of that platform and no emulator for it" in result["msg"]
    assert "fleet.multiarch.binfmt" in result["msg"] and "platform_builders" in result["msg"]


@pytest.mark.usefixtures("registry", "captured_builder")
def test_a_platform_this_host_emulates_passes_the_check(context, capsys, monkeypatch):
    monkeypatch.setattr(ImageBuilder, "local_platforms", lambda self: ["linux/amd64", "linux/loong64"])
    with pytest.raises(BuildStarted):
        run_main({"context": str(context), "platforms": ["linux/amd64", "linux/loong64"]}, capsys)


class ReplayedBuildCLI(CapturedBuilderCLI):
    """The captured engine 1 builder, whose `buildx build` prints the captured output of a failed build."""

    output = ""

    def run_streaming(self, args, on_output, environ=None):
        assert args[:2] == ["buildx", "build"], args
        on_output("stderr", self.output.encode())
        on_output("stderr", b"")
        return 1, "", self.output


def test_a_syntax_line_whose_frontend_cannot_be_pulled_says_what_to_do(registry, tmp_path, capsys, monkeypatch):
    """The module's build failure path uses frontend_failure on the build's own output (captured on engine 1)."""
    captured = (CapturedBuilderCLI.FIXTURES / "log-syntax-frontend-classic.txt").read_text()
    mark = "[linux/amd64] "
    ReplayedBuildCLI.output = "\n".join(ln[len(mark) :] for ln in captured.splitlines() if ln.startswith(mark))
    monkeypatch.setattr(bx.DockerCLI, "from_module", classmethod(lambda cls, module: ReplayedBuildCLI(module)))
    monkeypatch.setattr(ImageBuilder, "local_platforms", lambda self: ["linux/amd64"])
    shutil.copytree(CONTEXT.parent / "syntax-line", tmp_path / "ctx")
    log = tmp_path / "build.log"
    result = run_main({"context": str(tmp_path / "ctx"), "platforms": ["linux/amd64"], "log_path": str(log)}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "the build for linux/amd64 could not start: the Dockerfile starts with '# syntax=docker/dockerfile:1', so"
        " BuildKit first fetches the Dockerfile frontend image docker.io/docker/dockerfile:1, and the builder cannot"
        ' pull it (failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1"'
    ), result["msg"]
    assert "Mirror that image into a registry the builder reaches" in result["msg"]
    assert result["msg"].endswith(f"(full log: {log})")
