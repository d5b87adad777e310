"""fleet.multiarch.manifest_info against the real registries, checked against skopeo and the engine."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

from .helpers import run, run_module

RUN_ID = uuid.uuid4().hex[:8]
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def skopeo_raw(ref: str) -> tuple:
    raw = run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]).stdout.encode()
    return json.loads(raw), "sha256:" + hashlib.sha256(raw).hexdigest()


def platform_digests(index: dict) -> dict:
    out = {}
    for desc in index["manifests"]:
        p = desc["platform"]
        out["/".join(filter(None, [p["os"], p["architecture"], p.get("variant")]))] = desc["digest"]
    return out


@pytest.fixture(scope="module")
def busybox(testenv):
    ref = f"{testenv['registry']}/{testenv['images']['busybox']['repository']}"
    index, digest = skopeo_raw(ref)
    return {"ref": ref, "index": index, "digest": digest, "platforms": platform_digests(index)}


@pytest.fixture(scope="module")
def v6_only(testenv):
    """An index with linux/amd64 and linux/arm/v6 only, made by the manifest module."""
    registry = testenv["registry"]
    repo = f"fleet-test/manifest-info-{RUN_ID}"
    name = f"{registry}/{repo}:v6"
    images = [f"{registry}/library/busybox:1.35-amd64", f"{registry}/library/busybox:1.35-armel"]
    result = run_module("fleet.multiarch.manifest", {"name": name, "images": images})
    assert result["changed"] is True, result
    yield {"name": name, "result": result}
    client = RegistryClient(registry)
    try:
        client.delete_manifest(repo, result["digest"])
    except RegistryError as exc:
        if exc.status != 404:
            raise
    run(["docker", "image", "rm", "-f", name], check=False)


def test_inspect_index_matches_skopeo_and_docker(busybox):
    result = run_module("fleet.multiarch.manifest_info", {"name": busybox["ref"]})
    assert result["changed"] is False and result["exists"] is True, result
    assert result["digest"] == busybox["digest"]
    assert result["media_type"] == DOCKER_LIST and result["is_index"] is True
    assert {e["platform"]: e["digest"] for e in result["entries"]} == busybox["platforms"]
    assert [e["size"] for e in result["entries"]] == [d["size"] for d in busybox["index"]["manifests"]]
    assert result["platforms"] == list(busybox["platforms"])
    assert result["manifest"] == busybox["index"]
    inspected = json.loads(run(["docker", "manifest", "inspect", "--insecure", busybox["ref"]]).stdout)
    assert [m["digest"] for m in inspected["manifests"]] == [e["digest"] for e in result["entries"]]
    check = run_module("fleet.multiarch.manifest_info", {"name": busybox["ref"]}, check_mode=True)
    assert check["digest"] == result["digest"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("x86_64", "linux/amd64"),
        ("linux/arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("armhf", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("armel", "linux/arm/v6"),
        ("linux/arm/v5", None),
        ("riscv64", None),
    ],
)
def test_platform_digest(busybox, host, expected):
    result = run_module("fleet.multiarch.manifest_info", {"name": busybox["ref"], "platform": host})
    assert result["platform_digest"] == (busybox["platforms"][expected] if expected else None), result
    assert result["platform_match"] == expected


def test_arm_v7_host_gets_v6_image_like_the_engine(v6_only, testenv):
    result = run_module("fleet.multiarch.manifest_info", {"name": v6_only["name"], "platform": "linux/arm/v7"})
    v6 = {e["platform"]: e["digest"] for e in v6_only["result"]["entries"]}["linux/arm/v6"]
    assert (result["platform_digest"], result["platform_match"]) == (v6, "linux/arm/v6")
    # the engine (containerd's matcher) makes the same choice for an arm/v7 host: the v6 image runs
    proc = run(
        ["docker", "run", "--rm", "--pull", "always", "--platform", "linux/arm/v7", v6_only["name"], "uname", "-m"]
    )
    assert proc.returncode == 0
    inspected = run(["docker", "image", "inspect", "--format", "{{.Architecture}}/{{.Variant}}", v6_only["name"]])
    assert inspected.stdout.strip() == "arm/v6"
    arm64 = run_module("fleet.multiarch.manifest_info", {"name": v6_only["name"], "platform": "linux/arm64"})
    assert arm64["platform_digest"] is None  # no 32-bit fallback for arm64 hosts


def test_require_platforms(busybox, v6_only):
    ok = run_module(
        "fleet.multiarch.manifest_info",
        {"name": busybox["ref"], "require_platforms": ["linux/amd64", "aarch64", "linux/arm/v7", "armel"]},
    )
    assert ok.get("failed") is not True, ok
    # exact (the default, the release gate): no arm/v7 image is listed
    exact = run_module(
        "fleet.multiarch.manifest_info", {"name": v6_only["name"], "require_platforms": ["linux/arm/v7"]}
    )
    assert exact.get("failed") is True, exact
    assert "serves no image for linux/arm/v7" in exact["msg"]
    assert "a linux/arm/v7 host would run the linux/arm/v6 image: set require_match: compatible" in exact["msg"]
    served = run_module(
        "fleet.multiarch.manifest_info",
        {"name": v6_only["name"], "require_platforms": ["linux/arm/v7"], "require_match": "compatible"},
    )
    assert served.get("failed") is not True, served  # an arm/v7 host runs the v6 image
    for match in ("exact", "compatible"):
        missing = run_module(
            "fleet.multiarch.manifest_info",
            {
                "name": v6_only["name"],
                "require_platforms": ["linux/arm64", "linux/amd64", "riscv64"],
                "require_match": match,
            },
        )
        assert missing.get("failed") is True
        assert "serves no image for linux/arm64, linux/riscv64" in missing["msg"]
        assert "linux/amd64, linux/arm/v6" in missing["msg"]


def test_manifest_requires_by_the_same_rule(testenv):
    """fleet.multiarch.manifest's require_platforms and require_match mean what they mean in manifest_info."""
    registry = testenv["registry"]
    args = {
        "name": f"{registry}/fleet-test/manifest-info-rule-{RUN_ID}:v6",
        "images": [f"{registry}/library/busybox:1.35-amd64", f"{registry}/library/busybox:1.35-armel"],
        "require_platforms": ["linux/amd64", "linux/arm/v7"],
    }
    exact = run_module("fleet.multiarch.manifest", args, check_mode=True)
    assert exact.get("failed") is True and exact.get("changed") is not True, exact
    assert "required platforms missing: linux/arm/v7" in exact["msg"]
    assert "a linux/arm/v7 host would run the linux/arm/v6 image" in exact["msg"]
    compatible = run_module("fleet.multiarch.manifest", {**args, "require_match": "compatible"}, check_mode=True)
    assert compatible["changed"] is True and compatible.get("failed") is not True, compatible
    assert [e["platform"] for e in compatible["entries"]] == ["linux/amd64", "linux/arm/v6"]


def test_single_image_platform_from_config(testenv):
    ref = f"{testenv['registry']}/library/busybox:1.35-armhf"
    _unused, digest = skopeo_raw(ref)
    result = run_module("fleet.multiarch.manifest_info", {"name": ref, "platform": "armhf"})
    assert result["is_index"] is False and result["media_type"] == DOCKER_MANIFEST, result
    assert result["digest"] == digest
    assert [e["platform"] for e in result["entries"]] == ["linux/arm/v7"]
    assert result["platform_digest"] == digest
    other = run_module("fleet.multiarch.manifest_info", {"name": ref, "platform": "arm64"})
    assert other["platform_digest"] is None


def test_by_digest(busybox):
    ref = f"{busybox['ref'].rsplit(':', 1)[0]}@{busybox['platforms']['linux/arm64']}"
    result = run_module("fleet.multiarch.manifest_info", {"name": ref})
    assert result["digest"] == busybox["platforms"]["linux/arm64"]
    assert result["platforms"] == ["linux/arm64"]


def test_missing_reference(testenv):
    name = f"{testenv['registry']}/fleet-test/manifest-info-none-{RUN_ID}:nope"
    result = run_module("fleet.multiarch.manifest_info", {"name": name, "platform": "arm64"})
    assert result["exists"] is False and result["platform_digest"] is None, result
    required = run_module("fleet.multiarch.manifest_info", {"name": name, "require_platforms": ["arm64"]})
    assert required.get("failed") is True and "does not exist" in required["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "library/busybox:latest"}, "write the registry explicitly"),
        ({"name": "127.0.0.1:5000/library/busybox", "platform": "arm64/v7"}, "for 32-bit ARM write linux/arm/v7"),
        ({"name": "127.0.0.1:5000/library/busybox", "platform": "armv7"}, "write 'linux/arm/v7'"),
        ({"name": "127.0.0.1:5000/library/busybox", "require_platforms": ["linux/sparc"]}, "unknown architecture"),
        ({"name": "127.0.0.1:5000/library/Busybox"}, "invalid repository"),
        ({"name": "127.0.0.1:1/library/busybox"}, "cannot reach 127.0.0.1:1"),
    ],
)
def test_bad_input(args, message):
    result = run_module("fleet.multiarch.manifest_info", args)
    assert result.get("failed") is True, result
    assert message in result["msg"]
