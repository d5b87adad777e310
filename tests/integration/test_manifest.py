"""fleet.multiarch.manifest against the real registries: plain HTTP, TLS + basic auth, Bearer tokens.

Per-platform images are built by the engine (buildx, docker driver, one platform per build, QEMU for
the ARM ones) and pushed to the plain registry. Every index the module writes is read back by
`docker manifest inspect`, `docker buildx imagetools inspect` and `skopeo inspect --raw`, and run
with `docker run --platform`. Each test uses its own repositories and deletes them afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import compute_digest
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_auth import Credentials

from .helpers import purge_repository, run, run_module

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
RUN_ID = uuid.uuid4().hex[:8]


def tag_of(platform: str) -> str:
    return platform.replace("linux/", "").replace("/", "")


@pytest.fixture(scope="module")
def plain(testenv):
    return RegistryClient(testenv["registry"])


@pytest.fixture(scope="module")
def tls(testenv):
    conf = testenv["registry_tls"]
    password = Path(conf["password_file"]).read_text().strip()
    client = RegistryClient(
        conf["address"], credentials=Credentials(conf["username"], password), ca_cert=conf["ca_file"]
    )
    args = {"username": conf["username"], "password": password, "ca_cert": conf["ca_file"]}
    return {"client": client, "address": conf["address"], "args": args, "conf": conf, "password": password}


@pytest.fixture
def repos(testenv, plain):
    """Hands out repository names on the plain registry and deletes them afterwards."""
    made = []

    def make(purpose: str) -> str:
        name = f"fleet-test/manifest-{purpose}-{RUN_ID}"
        made.append(name)
        return name

    yield make
    for name in made:
        purge_repository(plain, name)


@pytest.fixture(scope="module")
def sources(testenv, plain, tmp_path_factory):
    """Per-platform images built by the engine, each with /fleet-platform naming its platform."""
    registry = testenv["registry"]
    repo = f"fleet-test/manifest-src-{RUN_ID}"
    base = f"{registry}/{testenv['images']['busybox']['repository']}"
    refs = {}
    for platform in PLATFORMS:
        ctx = tmp_path_factory.mktemp(tag_of(platform))
        (ctx / "platform.txt").write_text(platform + "\n")
        (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY platform.txt /fleet-platform\n")
        ref = f"{registry}/{repo}:{tag_of(platform)}"
        # --pull: the classic store keeps one platform per tag; never build on another platform's base
        run(
            ["docker", "buildx", "build", "--builder", "default", "--platform", platform, "--pull",
             "--output", f"type=image,name={ref},push=true", str(ctx)]
        )  # fmt: skip
        refs[platform] = ref
    digests = {p: plain.head_manifest(repo, tag_of(p))["digest"] for p in PLATFORMS}
    yield {"repo": repo, "refs": refs, "digests": digests}
    purge_repository(plain, repo)
    run(["docker", "image", "rm", "-f", *refs.values()], check=False)


def platforms_of(result: dict) -> dict:
    return {e["platform"]: e["digest"] for e in result["entries"] if not e["attestation"]}


def raw_index(ref: str, *extra: str) -> tuple:
    """``skopeo inspect --raw``: the bytes as stored, and their digest."""
    tls_flag = [] if any(e.startswith("--authfile") for e in extra) else ["--tls-verify=false"]
    proc = run(["skopeo", "inspect", "--raw", *tls_flag, *extra, f"docker://{ref}"])
    raw = proc.stdout.encode()
    return json.loads(raw), "sha256:" + hashlib.sha256(raw).hexdigest()


def interop_check(
    ref: str, result: dict, env: dict | None = None, skopeo_args: tuple = (), imagetools: bool = True
) -> None:
    """docker manifest inspect, docker buildx imagetools inspect and skopeo read what the module wrote.

    buildx 0.13's imagetools speaks plain HTTP to every 127.0.0.1 registry (its docker driver takes no
    registry TLS configuration), so it is used on the plain registry only.
    """
    expected = platforms_of(result)
    data, digest = raw_index(ref, *skopeo_args)
    assert digest == result["digest"]
    assert data["mediaType"] == result["media_type"]
    seen = {}
    for desc in data["manifests"]:
        p = desc["platform"]
        if p.get("os") == "unknown":
            continue
        seen["/".join(filter(None, [p["os"], p["architecture"], p.get("variant")]))] = desc["digest"]
    assert seen == expected

    proc = run(["docker", "manifest", "inspect", "--insecure", ref], env=env)
    inspected = json.loads(proc.stdout)
    assert [m["digest"] for m in inspected["manifests"]] == [m["digest"] for m in data["manifests"]]

    if not imagetools:
        return
    proc = run(["docker", "buildx", "imagetools", "inspect", "--raw", ref], env=env)
    assert json.loads(proc.stdout) == data
    proc = run(["docker", "buildx", "imagetools", "inspect", ref], env=env)
    assert f"Digest:    {result['digest']}" in proc.stdout
    for platform in expected:
        assert re.search(rf"Platform:\s+{re.escape(platform)}\n", proc.stdout), platform


# --------------------------------------------------------------------------- plain HTTP registry


def test_create_across_repositories_check_apply_idempotent(testenv, sources, repos, plain):
    name = f"{testenv['registry']}/{repos('app')}:v1"
    args = {"name": name, "images": [sources["refs"][p] for p in PLATFORMS], "require_platforms": list(PLATFORMS)}

    check = run_module("fleet.multiarch.manifest", args, check_mode=True, diff=True)
    assert check["changed"] is True, check
    assert platforms_of(check) == sources["digests"]
    assert check["diff"]["before"] == {}
    assert check["diff"]["after"]["platforms"] == sources["digests"]
    assert sorted(check["copied"]) == sorted(sources["digests"].values())
    assert plain.head_manifest(name.split("/", 1)[1].split(":", maxsplit=1)[0], "v1") is None, "check mode pushed"

    applied = run_module("fleet.multiarch.manifest", args, diff=True)
    assert applied["changed"] is True, applied
    assert applied["digest"] == check["digest"]
    assert applied["media_type"] == DOCKER_LIST  # the sources are Docker v2 manifests
    assert {e["size"] for e in applied["entries"]} and all(e["size"] > 0 for e in applied["entries"])

    again = run_module("fleet.multiarch.manifest", args, check_mode=True, diff=True)
    assert again["changed"] is False, again
    assert again["copied"] == []
    assert again["diff"]["before"] == again["diff"]["after"]
    final = run_module("fleet.multiarch.manifest", args)
    assert final["changed"] is False and final["digest"] == applied["digest"]

    interop_check(name, applied)


def test_a_copy_that_fails_leaves_the_tag_where_it_was(testenv, sources, repos, plain, tmp_path):
    """The arm64 source lost a layer blob: the copy fails, nothing is pushed, the tag keeps its index."""
    registry = testenv["registry"]
    name = f"{registry}/{repos('halfbuilt')}:v1"
    first = run_module("fleet.multiarch.manifest", {"name": name, "images": list(sources["refs"].values())})
    assert first["changed"] is True, first
    # an arm64 image whose top layer (a file of its own) is then deleted from its repository
    broken_repo = repos("broken")
    (tmp_path / "own.txt").write_text(f"only here {RUN_ID}\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {sources['refs']['linux/arm64']}\nCOPY own.txt /own.txt\n")
    broken = f"{registry}/{broken_repo}:arm64"
    run(
        ["docker", "buildx", "build", "--builder", "default", "--platform", "linux/arm64", "--pull",
         "--output", f"type=image,name={broken},push=true", str(tmp_path)]
    )  # fmt: skip
    run(["docker", "image", "rm", "-f", broken], check=False)
    layer = plain.get_manifest(broken_repo, "arm64").data["layers"][-1]["digest"]
    plain.request("DELETE", f"{broken_repo}/blobs/{layer}", what="delete a blob", expect=(202,))
    assert not plain.blob_exists(broken_repo, layer)

    images = [sources["refs"]["linux/amd64"], broken, sources["refs"]["linux/arm/v7"]]
    failed = run_module("fleet.multiarch.manifest", {"name": name, "images": images})
    assert failed.get("failed") is True, failed
    assert layer in failed["msg"] or "blob" in failed["msg"], failed["msg"]
    # the tag still points at the first index: no half-built index was ever pushed
    head = plain.head_manifest(name.split("/", 1)[1].rsplit(":", 1)[0], "v1")
    assert head["digest"] == first["digest"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_docker_run_pulls_the_right_variant(testenv, sources, repos, platform):
    name = f"{testenv['registry']}/{repos('run')}:v1"
    result = run_module("fleet.multiarch.manifest", {"name": name, "images": list(sources["refs"].values())})
    assert result["changed"] is True, result
    try:
        proc = run(
            ["docker", "run", "--rm", "--pull", "always", "--platform", platform, name,
             "sh", "-c", 'read p < /fleet-platform; echo "$p"; uname -m']
        )  # fmt: skip
        assert proc.stdout.split() == [platform, UNAME[platform]]
    finally:
        run(["docker", "image", "rm", "-f", name], check=False)


def registry_requests(log: Path, start: int, repository: str) -> list:
    """``(method, path after the repository, status)`` of each request for ``repository`` in the registry's access
    log from byte ``start`` on."""
    pattern = re.compile(rf'"([A-Z]+) /v2/{re.escape(repository)}/(\S+) HTTP/[\d.]+" (\d{{3}}) ')
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode("utf-8", "replace")
    return [(m[1], m[2], int(m[3])) for m in pattern.finditer(text)]


def test_same_repository_sources_need_no_copy(testenv, sources, repos, plain):
    """Sources in the target's repository: nothing copied, and the registry sees only the target's HEAD, one GET
    of each manifest and of its config, the PUT and the tag read back after it (2n + 3 requests, the count benchmark
    2 stands on; the read-back tells another writer of the tag, issue 26)."""
    name = f"{testenv['registry']}/{sources['repo']}:multi-{RUN_ID}"
    log = Path(testenv["registry_log"])
    start = log.stat().st_size
    try:
        result = run_module("fleet.multiarch.manifest", {"name": name, "images": list(sources["refs"].values())})
        assert result["changed"] is True and result["copied"] == []
        assert platforms_of(result) == sources["digests"]
        seen = registry_requests(log, start, sources["repo"])
        configs = {plain.get_manifest(sources["repo"], d).data["config"]["digest"] for d in sources["digests"].values()}
        expected = [("HEAD", f"manifests/multi-{RUN_ID}", 404), ("PUT", f"manifests/multi-{RUN_ID}", 201)]
        expected += [("HEAD", f"manifests/multi-{RUN_ID}", 200)]
        expected += [("GET", f"manifests/{tag_of(p)}", 200) for p in PLATFORMS]
        expected += [("GET", f"blobs/{c}", 200) for c in configs]
        assert sorted(seen) == sorted(expected), seen
    finally:
        head = plain.head_manifest(sources["repo"], f"multi-{RUN_ID}")
        if head:
            plain.delete_manifest(sources["repo"], head["digest"])


def test_index_sources_are_flattened_and_duplicates_refused(testenv, sources, repos):
    busybox = f"{testenv['registry']}/{testenv['images']['busybox']['repository']}"
    name = f"{testenv['registry']}/{repos('flat')}:v1"
    result = run_module("fleet.multiarch.manifest", {"name": name, "images": [busybox]})
    assert result["changed"] is True, result
    assert sorted(platforms_of(result)) == sorted(testenv["images"]["busybox"]["platforms"])

    # busybox's index already has linux/arm64: a second source for it is an error, not last-one-wins
    dup = run_module("fleet.multiarch.manifest", {"name": name, "images": [busybox, sources["refs"]["linux/arm64"]]})
    assert dup.get("failed"), dup
    assert "linux/arm64 comes from two sources" in dup["msg"]
    assert busybox in dup["msg"] and sources["refs"]["linux/arm64"] in dup["msg"]

    # an index of an index: the new index's entries are those of the first
    again = run_module(
        "fleet.multiarch.manifest", {"name": f"{testenv['registry']}/{repos('flat2')}:v1", "images": [name]}
    )
    assert platforms_of(again) == platforms_of(result)


def test_overrides_and_annotations_make_an_oci_index(testenv, sources, repos):
    name = f"{testenv['registry']}/{repos('oci')}:v1"
    args = {
        "name": name,
        "annotations": {"org.opencontainers.image.version": "1.0"},
        "images": [
            sources["refs"]["linux/amd64"],
            {
                "reference": sources["refs"]["linux/arm/v7"],
                "platform": "armel",  # the v7 build declared as linux/arm/v6
                "annotations": {"org.opencontainers.image.description": "for the Pi Zero"},
            },
        ],
    }
    result = run_module("fleet.multiarch.manifest", args)
    assert result["changed"] is True, result
    assert result["media_type"] == OCI_INDEX
    assert platforms_of(result) == {
        "linux/amd64": sources["digests"]["linux/amd64"],
        "linux/arm/v6": sources["digests"]["linux/arm/v7"],
    }
    data, _unused = raw_index(name)
    assert data["annotations"] == {"org.opencontainers.image.version": "1.0"}
    assert data["manifests"][1]["platform"] == {"architecture": "arm", "os": "linux", "variant": "v6"}
    assert data["manifests"][1]["annotations"] == {"org.opencontainers.image.description": "for the Pi Zero"}
    interop_check(name, result)
    assert run_module("fleet.multiarch.manifest", args)["changed"] is False

    # a changed annotation is a change, and the diff shows the digests before and after
    args["annotations"] = {"org.opencontainers.image.version": "1.1"}
    changed = run_module("fleet.multiarch.manifest", args, diff=True)
    assert changed["changed"] is True
    assert changed["diff"]["before"]["digest"] == result["digest"] != changed["diff"]["after"]["digest"]


def test_attestations_keep_and_drop(testenv, sources, repos, plain):
    """A source index in BuildKit's layout: an image plus its attestation manifest (unknown/unknown)."""
    repo = repos("att-src")
    amd64 = plain.get_manifest(sources["repo"], sources["digests"]["linux/amd64"])
    # copy the amd64 image into repo, then push an in-toto attestation manifest for it
    for blob in [amd64.data["config"], *amd64.data["layers"]]:
        assert plain.mount_blob(repo, blob["digest"], sources["repo"]) == ""
    plain.put_manifest(repo, amd64.digest, amd64.body, amd64.media_type)
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}).encode()
    config = b"{}"
    for blob in (statement, config):
        plain.upload_blob(repo, compute_digest(blob), blob)
    att = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": compute_digest(config),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": compute_digest(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
                }
            ],
        }
    ).encode()
    att_digest = plain.put_manifest(repo, compute_digest(att), att, OCI_MANIFEST).digest
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": amd64.media_type, "digest": amd64.digest, "size": amd64.size,
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": att_digest, "size": len(att),
                 "platform": {"architecture": "unknown", "os": "unknown"},
                 "annotations": {"vnd.docker.reference.digest": amd64.digest,
                                 "vnd.docker.reference.type": "attestation-manifest"}},
            ],
        }
    ).encode()  # fmt: skip
    plain.put_manifest(repo, "v1", index, OCI_INDEX)
    source = f"{testenv['registry']}/{repo}:v1"

    kept_name = f"{testenv['registry']}/{repos('att-keep')}:v1"
    kept = run_module(
        "fleet.multiarch.manifest", {"name": kept_name, "images": [source, sources["refs"]["linux/arm64"]]}
    )
    assert kept["changed"] is True, kept
    assert [e["attestation"] for e in kept["entries"]] == [False, True, False]
    assert kept["media_type"] == OCI_INDEX
    data, _unused = raw_index(kept_name)
    assert data["manifests"][1]["platform"] == {"architecture": "unknown", "os": "unknown"}
    run(["docker", "buildx", "imagetools", "inspect", kept_name])

    dropped_name = f"{testenv['registry']}/{repos('att-drop')}:v1"
    args = {"name": dropped_name, "images": [source, sources["refs"]["linux/arm64"]], "attestations": "drop"}
    dropped = run_module("fleet.multiarch.manifest", args)
    assert [e["attestation"] for e in dropped["entries"]] == [False, False]
    assert dropped["media_type"] == DOCKER_LIST  # only Docker v2 images are left
    assert "unknown" not in json.dumps(raw_index(dropped_name)[0])
    interop_check(dropped_name, dropped)


# --------------------------------------------------------------------------- bad input and failures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "fleet-test/app:v1", "images": ["127.0.0.1:5000/library/busybox:latest"]}, "has no registry host"),
        ({"name": "127.0.0.1:5000/fleet-test/app:v1", "images": ["busybox"]}, "write it explicitly"),
        (
            {"name": "127.0.0.1:5000/fleet-test/app:v1", "images": [{"reference": "SRC", "platform": "arm64/v7"}]},
            "for 32-bit ARM write linux/arm/v7",
        ),
        (
            {"name": "127.0.0.1:5000/fleet-test/app:v1", "images": [{"reference": "SRC", "platform": "armv7"}]},
            "write 'linux/arm/v7'",
        ),
        (
            {
                "name": "127.0.0.1:5000/fleet-test/app:v1",
                "images": ["SRC"],
                "media_type": "docker",
                "annotations": {"a": "b"},
            },
            "a Docker manifest list has no annotations",
        ),
        (
            {"name": "127.0.0.1:5000/fleet-test/app:v1", "images": ["127.0.0.1:5000/fleet-test/none:nope"]},
            "not found on",
        ),
        (
            {"name": "127.0.0.1:5000/fleet-test/app:v1", "images": ["SRC"], "require_platforms": ["riscv64"]},
            "linux/riscv64",
        ),
        (
            {"name": "127.0.0.1:5000/fleet-test/app:v1", "images": ["SRC"], "require_platforms": ["arm64/v8", "armhf"]},
            "required platforms missing: linux/arm/v7 (the images give: linux/arm64); nothing was pushed",
        ),
        (
            {
                "name": "127.0.0.1:5000/fleet-test/app:v1",
                "images": ["SRC"],
                "require_platforms": ["armhf"],
                "require_match": "compatible",
            },
            "required platforms missing: linux/arm/v7",  # no architecture is crossed: arm64 serves no arm/v7 host
        ),
        ({"name": "127.0.0.1:5000/fleet-test/app:v1", "images": ["SRC", "SRC"]}, "is given twice"),
        ({"name": "127.0.0.1:5000/fleet-test/app:v1"}, "images"),
        ({"name": "127.0.0.1:5000/fleet-test/app:v1", "images": [{"ref": "SRC"}]}, "unknown keys ref"),
    ],
)
def test_bad_input_fails_before_pushing(testenv, sources, plain, args, message):
    args = json.loads(json.dumps(args).replace('"SRC"', json.dumps(sources["refs"]["linux/arm64"])))
    result = run_module("fleet.multiarch.manifest", args)
    assert result.get("failed"), result
    assert message in result["msg"]
    assert plain.head_manifest("fleet-test/app", "v1") is None


def test_absent(testenv, sources, repos, plain):
    repo = repos("absent")
    name = f"{testenv['registry']}/{repo}:v1"
    created = run_module("fleet.multiarch.manifest", {"name": name, "images": list(sources["refs"].values())})
    assert created["changed"] is True

    check = run_module("fleet.multiarch.manifest", {"name": name, "state": "absent"}, check_mode=True, diff=True)
    assert check["changed"] is True and check["diff"]["after"] == {}
    assert check["diff"]["before"]["digest"] == created["digest"]
    assert plain.head_manifest(repo, "v1") is not None, "check mode deleted"

    # distribution 2.8 deletes by digest only: another tag on the same index must not vanish silently
    index = plain.get_manifest(repo, "v1")
    plain.put_manifest(repo, "other", index.body, index.media_type)
    refused = run_module("fleet.multiarch.manifest", {"name": name, "state": "absent"})
    assert refused.get("failed") and "other" in refused["msg"], refused
    plain.delete_manifest(repo, index.digest)
    plain.put_manifest(repo, "v1", index.body, index.media_type)

    gone = run_module("fleet.multiarch.manifest", {"name": name, "state": "absent"})
    assert gone["changed"] is True
    assert plain.head_manifest(repo, "v1") is None
    again = run_module("fleet.multiarch.manifest", {"name": name, "state": "absent"})
    assert again["changed"] is False


# --------------------------------------------------------------------------- TLS + basic auth


def test_tls_basic_auth_copy_from_another_registry(testenv, sources, tls, tmp_path):
    repo = f"fleet-test/manifest-tls-{RUN_ID}"
    name = f"{tls['address']}/{repo}:v1"
    args = {"name": name, "images": list(sources["refs"].values()), **tls["args"]}
    try:
        check = run_module("fleet.multiarch.manifest", args, check_mode=True)
        assert check["changed"] is True and len(check["copied"]) == 3, check
        applied = run_module("fleet.multiarch.manifest", args)
        assert applied["changed"] is True, applied
        assert tls["password"] not in json.dumps(applied)
        assert run_module("fleet.multiarch.manifest", args)["changed"] is False

        # credentials from a Docker config written by a real `docker login`, in a throwaway DOCKER_CONFIG
        config_dir = tmp_path / "docker"
        config_dir.mkdir()
        env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
        run(
            ["docker", "login", tls["address"], "--username", tls["conf"]["username"], "--password-stdin"],
            input=tls["password"],
            env=env,
        )
        auth = json.loads((config_dir / "config.json").read_text())["auths"][tls["address"]]["auth"]
        assert base64.b64decode(auth).decode() == f"{tls['conf']['username']}:{tls['password']}"
        info = run_module(
            "fleet.multiarch.manifest_info",
            {"name": name, "docker_config": str(config_dir), "ca_cert": tls["conf"]["ca_file"]},
        )
        assert info["digest"] == applied["digest"], info
        interop_check(
            name, applied, env=env, skopeo_args=(f"--authfile={config_dir / 'config.json'}",), imagetools=False
        )

        wrong = run_module("fleet.multiarch.manifest", {**args, "password": "not-the-password"})
        assert wrong.get("failed") and "check the username and password" in wrong["msg"]
        assert "not-the-password" not in json.dumps(wrong)
        anonymous = run_module("fleet.multiarch.manifest_info", {"name": name, "ca_cert": tls["conf"]["ca_file"]})
        assert anonymous.get("failed") and "give username and password" in anonymous["msg"]
        no_ca = run_module("fleet.multiarch.manifest_info", {"name": name, **tls["args"], "ca_cert": None})
        assert no_ca.get("failed") and "ca_cert" in no_ca["msg"]
    finally:
        purge_repository(tls["client"], repo)


# --------------------------------------------------------------------------- Bearer token registry


def test_bearer_token_registry(testenv, sources, tmp_path):
    conf = testenv.get("registry_token")
    if not conf:
        pytest.fail(
            "testenv.json has no registry_token (the Bearer-token registry of scripts/testenv.sh):"
            " bring the environment up with a scripts/testenv.sh that starts it",
            pytrace=False,
        )
    password = Path(conf["password_file"]).read_text().strip()
    client = RegistryClient(
        conf["address"], credentials=Credentials(conf["username"], password), ca_cert=conf["ca_file"]
    )
    repo = f"fleet-test/manifest-token-{RUN_ID}"
    name = f"{conf['address']}/{repo}:v1"
    auth = {"username": conf["username"], "password": password, "ca_cert": conf["ca_file"]}
    try:
        challenge = run(
            ["curl", "-s", "-o", "/dev/null", "-D", "-", "--cacert", conf["ca_file"], f"https://{conf['address']}/v2/"]
        )
        assert f'Bearer realm="{conf["realm"]}"' in challenge.stdout
        args = {"name": name, "images": list(sources["refs"].values()), **auth}
        applied = run_module("fleet.multiarch.manifest", args)
        assert applied["changed"] is True, applied
        assert run_module("fleet.multiarch.manifest", args)["changed"] is False

        # across repositories of the token registry: the mount needs pull on the source repository too
        other = f"{conf['address']}/{repo}-b:v1"
        across = run_module("fleet.multiarch.manifest", {"name": other, "images": [name], **auth})
        assert across["changed"] is True and len(across["copied"]) == 3, across
        assert platforms_of(across) == platforms_of(applied)

        info = run_module("fleet.multiarch.manifest_info", {"name": name, "platform": "armhf", **auth})
        assert info["platform_digest"] == sources["digests"]["linux/arm/v7"]
        config_dir = tmp_path / "docker"
        config_dir.mkdir()
        env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
        run(
            ["docker", "login", conf["address"], "--username", conf["username"], "--password-stdin"],
            input=password,
            env=env,
        )
        interop_check(
            name, applied, env=env, skopeo_args=(f"--authfile={config_dir / 'config.json'}",), imagetools=False
        )

        wrong = run_module("fleet.multiarch.manifest_info", {"name": name, **auth, "password": "wrong-pw"})
        assert wrong.get("failed") and "token server" in wrong["msg"] and "wrong-pw" not in wrong["msg"]
    finally:
        purge_repository(client, repo)
        purge_repository(client, f"{repo}-b")
