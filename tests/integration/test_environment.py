"""The test environment itself: a real engine, real registries, real QEMU emulation.

These are the facts every later integration test relies on, so they are proved first.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pytest
import requests

from .helpers import run

# platform -> what `uname -m` prints inside a container of that platform (QEMU reports armv7l for arm/v6)
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}
INDEX_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"


def _registry_json(registry: str, path: str, accept: str) -> dict:
    resp = requests.get(f"http://{registry}/v2/{path}", headers={"Accept": accept}, timeout=10)
    resp.raise_for_status()
    return resp.json()


@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm/v7", "linux/amd64"])
def test_container_of_each_platform_runs_from_local_registry(testenv, platform):
    image = f"{testenv['registry']}/{testenv['images']['busybox']['repository']}"
    proc = run(["docker", "run", "--rm", "--pull", "always", "--platform", platform, image, "uname", "-m"])
    assert proc.stdout.strip() == UNAME[platform]


@pytest.mark.parametrize("image", ["busybox", "debian", "golang"])
def test_base_images_are_indexes_whose_configs_carry_the_platform(testenv, image):
    repo, tag = testenv["images"][image]["repository"].split(":")
    index = _registry_json(testenv["registry"], f"{repo}/manifests/{tag}", INDEX_TYPES)
    assert index["mediaType"] in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
    listed = set()
    for entry in index["manifests"]:
        p = entry["platform"]
        listed.add("/".join(filter(None, [p["os"], p["architecture"], p.get("variant")])))
        manifest = _registry_json(testenv["registry"], f"{repo}/manifests/{entry['digest']}", entry["mediaType"])
        config_digest = manifest["config"]["digest"]
        config = requests.get(f"http://{testenv['registry']}/v2/{repo}/blobs/{config_digest}", timeout=10).json()
        # The config blob itself, not only the index entry, must name the architecture and variant.
        assert (config["os"], config["architecture"], config.get("variant")) == (
            p["os"],
            p["architecture"],
            p.get("variant"),
        ), f"{image} {entry['digest']}"
    assert listed == set(testenv["images"][image]["platforms"])


def test_unmodified_dockerfile_builds_offline_through_the_mirror_under_emulation(testenv):
    """`FROM debian:bookworm` resolves through the engine's registry mirror; RUN executes under QEMU."""
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(
            "FROM debian:bookworm\nRUN uname -m > /arch && dpkg --print-architecture >> /arch\n"
        )
        tag = "fleet-testenv-probe:arm64"
        # --pull: resolve the base through the mirror now, not from an older image the engine kept
        run(
            [
                "docker",
                "buildx",
                "build",
                "--builder",
                "default",
                "--platform",
                "linux/arm64",
                "--pull",
                "--load",
                "-t",
                tag,
                ctx,
            ]
        )
        try:
            out = run(["docker", "run", "--rm", "--platform", "linux/arm64", tag, "cat", "/arch"]).stdout.split()
            layers = json.loads(run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", tag]).stdout)
        finally:
            run(["docker", "image", "rm", "-f", tag], check=False)
    assert out == ["aarch64", "arm64"]
    # The base layer is the local registry's linux/arm64 Debian root, byte for byte, not some other bookworm.
    registry = testenv["registry"]
    index = _registry_json(registry, "library/debian/manifests/bookworm", INDEX_TYPES)
    (entry,) = [m for m in index["manifests"] if m["platform"]["architecture"] == "arm64"]
    manifest = _registry_json(
        registry,
        f"library/debian/manifests/{entry['digest']}",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    )
    config = requests.get(f"http://{registry}/v2/library/debian/blobs/{manifest['config']['digest']}", timeout=10)
    config.raise_for_status()
    assert layers[0] == config.json()["rootfs"]["diff_ids"][0]


def test_second_bring_up_is_quick_and_starts_nothing(testenv):
    """`scripts/testenv.sh up` on a running environment: every part is reused, nothing is started or rebuilt."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "testenv.sh"
    started = time.monotonic()
    proc = run(["bash", str(script), "up"])
    seconds = time.monotonic() - started
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[testenv]")]
    assert lines and lines[-1].startswith("[testenv] up in"), proc.stderr
    busy = [
        line
        for line in lines[:-1]
        if any(w in line for w in ("starting", "installing", "building", "making", "fetching", "restarting"))
    ]
    assert not busy, f"a second bring-up redid work: {busy}"
    assert seconds < 30, f"a second bring-up took {seconds:.1f} s"


def test_tls_registry_demands_credentials_and_accepts_them(testenv):
    tls = testenv["registry_tls"]
    password = Path(tls["password_file"]).read_text().strip()
    url = f"https://{tls['address']}/v2/"
    assert requests.get(url, verify=tls["ca_file"], timeout=10).status_code == 401
    assert requests.get(url, verify=tls["ca_file"], auth=(tls["username"], "wrong"), timeout=10).status_code == 401
    assert requests.get(url, verify=tls["ca_file"], auth=(tls["username"], password), timeout=10).status_code == 200


def test_plain_registry_allows_deletes(testenv):
    """Tests of later issues delete manifests, so the plain registry must have deletes enabled."""
    repo = "fleet-testenv/delete-probe"
    src = f"{testenv['registry']}/{testenv['images']['busybox']['repository']}"
    run(
        [
            "skopeo",
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{src}",
            f"docker://{testenv['registry']}/{repo}:probe",
        ]
    )
    head = requests.head(
        f"http://{testenv['registry']}/v2/{repo}/manifests/probe",
        headers={"Accept": INDEX_TYPES},
        timeout=10,
    )
    digest = head.headers["Docker-Content-Digest"]
    resp = requests.delete(f"http://{testenv['registry']}/v2/{repo}/manifests/{digest}", timeout=10)
    assert resp.status_code == 202, resp.text
    assert requests.head(f"http://{testenv['registry']}/v2/{repo}/manifests/{digest}", timeout=10).status_code == 404


def test_buildx_plugin_is_cached_with_its_checksum(testenv):
    data = Path(testenv["buildx"]["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == testenv["buildx"]["sha256"]
    version = run(["docker", "buildx", "version"]).stdout
    upstream = testenv["buildx"]["debian_version"].split("+")[0]
    assert upstream in version, version
    info = json.loads(run(["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"]).stdout)
    assert f"http://{testenv['registry']}/" in info


def test_token_registry_runs_the_bearer_challenge_flow(testenv):
    """401 with a Bearer challenge, a token from the realm for good credentials only, then access."""
    reg = testenv["registry_token"]
    password = Path(reg["password_file"]).read_text().strip()
    ca = reg["ca_file"]
    url = f"https://{reg['address']}/v2/_catalog"
    challenge = requests.get(url, verify=ca, timeout=10)
    assert challenge.status_code == 401
    www = challenge.headers["WWW-Authenticate"]
    assert www.startswith("Bearer ") and f'realm="{reg["realm"]}"' in www and f'service="{reg["service"]}"' in www

    params = {"service": reg["service"], "scope": "registry:catalog:*"}
    assert (
        requests.get(reg["realm"], params=params, auth=(reg["username"], "wrong"), verify=ca, timeout=10).status_code
        == 401
    )
    anonymous = requests.get(reg["realm"], params=params, verify=ca, timeout=10).json()["token"]
    assert requests.get(url, headers={"Authorization": f"Bearer {anonymous}"}, verify=ca, timeout=10).status_code == 401
    token = requests.get(reg["realm"], params=params, auth=(reg["username"], password), verify=ca, timeout=10).json()
    ok = requests.get(url, headers={"Authorization": f"Bearer {token['token']}"}, verify=ca, timeout=10)
    assert ok.status_code == 200, ok.text
    assert "repositories" in ok.json()


def test_second_engine_uses_the_containerd_store_and_builds_an_index(testenv):
    """Engine 26 with the containerd image store: the docker driver builds several platforms at once."""
    engine = testenv["engines"]["containerd"]
    env = {**os.environ, "DOCKER_HOST": engine["docker_host"]}
    info = json.loads(run(["docker", "info", "--format", "{{json .}}"], env=env).stdout)
    assert info["ServerVersion"].startswith("26.")
    assert dict(info["DriverStatus"]).get("driver-type") == "io.containerd.snapshotter.v1"
    assert (
        run(["docker", "run", "--rm", "--platform", "linux/arm/v7", "busybox", "uname", "-m"], env=env).stdout.strip()
        == "armv7l"
    )

    ref = f"{testenv['registry']}/fleet-testenv/engine2-probe:multi"
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text("FROM busybox\nRUN uname -m > /arch\n")
        run(
            [
                "docker",
                "buildx",
                "build",
                "--builder",
                "default",
                "--provenance=false",
                "--sbom=false",
                "--platform",
                "linux/amd64,linux/arm64,linux/arm/v7",
                "-t",
                ref,
                "--push",
                ctx,
            ],
            env=env,
        )
    repo, tag = ref.split("/", 1)[1].split(":")
    index = _registry_json(testenv["registry"], f"{repo}/manifests/{tag}", INDEX_TYPES)
    platforms = {
        "/".join(filter(None, [m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")]))
        for m in index["manifests"]
    }
    assert platforms == {"linux/amd64", "linux/arm64", "linux/arm/v7"}


# The applets a shell script in a busybox image commonly calls; none of them was linked in the busybox image
# this environment had before it took Docker Hub's shape (only what our own tests used was).
SCRIPT_APPLETS = (
    "wc -c /etc/passwd && head -n1 /etc/group && sed -n 1p /etc/passwd && awk -F: 'NR==1{print $1}' /etc/passwd"
)


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"])
def test_busybox_behaves_like_docker_hubs(testenv, platform):
    """Every applet is a link in /bin, and a shell script's applets run under emulation as they do natively.

    Docker Hub's busybox links every applet in /bin and its shell finds them on PATH. Debian's busybox-static
    instead re-executes /proc/self/exe for each applet, which under QEMU without binfmt's P flag loses the
    applet's name (`sh -c 'wc -c FILE'` exited 126 for every ARM platform).
    """
    image = f"{testenv['registry']}/{testenv['images']['busybox']['repository']}"
    docker = ["docker", "run", "--rm", "--platform", platform, image]
    run(["docker", "pull", "-q", "--platform", platform, image])
    applets = set(run([*docker, "busybox", "--list"]).stdout.split())
    linked = set(run([*docker, "ls", "/bin"]).stdout.split())
    assert len(applets) > 200, applets
    assert applets - {"busybox"} <= linked, f"applets without a link in /bin: {sorted(applets - linked)}"
    out = run([*docker, "sh", "-c", SCRIPT_APPLETS]).stdout.split()
    assert out[1:] == ["/etc/passwd", "root:x:0:", "root:x:0:0:root:/root:/bin/sh", "root"] and out[0].isdigit(), out
    assert run([*docker, "id", "-gn", "nobody"]).stdout.strip() == "nogroup"
