"""The Dockerfile patterns real projects use, built with fleet.multiarch.image_build on the real engines.

Every pattern is built for linux/amd64, linux/arm64, linux/arm/v7 and linux/arm/v6 where its base image has
the platform (the local busybox has all four, debian:bookworm and golang the first three / linux/amd64 only,
which is why the cross-compiling stages name ``--platform=$BUILDPLATFORM``). Each platform's image is then
read back and checked to be that platform's code:

- compiled programs: the ELF header of the binary in the image (class and e_machine; for 32-bit ARM the
  float ABI in e_flags and the CPU architecture in ``.ARM.attributes``; for Go the ``GOARM`` that
  ``go version -m`` reads from the binary), and the program's own answer when it runs with ``--platform``;
- the other images: ``docker run --platform P`` and ``uname -m`` (QEMU says armv7l for arm/v6 as well, so
  the arm/v6 image's busybox is checked to be soft-float code for at most ARMv6 instead). Go writes neither
  float-ABI flags nor ``.ARM.attributes`` into its ELF files: its GOARM is read with ``go version -m``.

Engines: engine 1 is Debian's docker 20.10 (BuildKit 0.8, classic image store, strategy per_platform),
engine 2 trixie's docker 26 (containerd image store, strategy multi); see testenv.json ``engines``.
Contexts: tests/integration/contexts/<pattern>/. Each test publishes into a repository of its own,
deleted afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

from .helpers import play_recap, purge_repository, run, run_module, run_playbook

CONTEXTS = Path(__file__).resolve().parent / "contexts"
ALL = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
DEBIAN = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l", "linux/arm/v6": "armv7l"}
# e_machine and EI_CLASS (1: 32-bit, 2: 64-bit) of each platform's ELF files
ELF = {"linux/amd64": (62, 2), "linux/arm64": (183, 2), "linux/arm/v7": (40, 1), "linux/arm/v6": (40, 1)}
# Tag_CPU_arch of .ARM.attributes (ARM ABI addenda): 4 v5TE, 6 v6, 10 v7
ARM_V5TE, ARM_V6, ARM_V7 = 4, 6, 10
EF_ARM_SOFT_FLOAT, EF_ARM_HARD_FLOAT = 0x200, 0x400
RUN_ID = uuid.uuid4().hex[:8]
MODULE = "fleet.multiarch.image_build"
# what `go version -m` reads from a binary given on stdin (it wants an executable file)
GO_VERSION_M = "cat > /tmp/hello && chmod +x /tmp/hello && go version -m /tmp/hello"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def plain(testenv):
    return RegistryClient(testenv["registry"])


@pytest.fixture
def repo(testenv, plain, request):
    """A repository of its own on the plain registry, purged afterwards."""
    slug = request.node.name.replace("_", "-").replace("[", "-").replace("]", "").replace("/", "-")
    name = f"fleet-test/pattern-{slug[5:45].strip('-')}-{RUN_ID}"
    yield f"{testenv['registry']}/{name}"
    purge_repository(plain, name)


def engine_env(testenv, engine: str) -> dict:
    return {**os.environ, "DOCKER_HOST": testenv["engines"][engine]["docker_host"]}


def context(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(CONTEXTS / name, dest)
    return dest


def build(args: dict, **kwargs) -> dict:
    result = run_module(MODULE, args, **kwargs)
    assert not result.get("failed"), result.get("msg")
    return result


def run_image(ref: str, platform: str, *command: str) -> list:
    """The output lines of ``docker run --platform`` (engine 1, which pulls from the registry by digest)."""
    proc = run(["docker", "run", "--rm", "--platform", platform, ref, *command])
    return proc.stdout.strip().splitlines()


def image_layers(client: RegistryClient, repository: str, digest: str) -> list:
    """Every layer of one platform's image as an open tar archive, lowest first."""
    manifest = client.get_manifest(repository, digest).data
    return [
        tarfile.open(fileobj=io.BytesIO(client.get_blob(repository, layer["digest"])), mode="r:*")
        for layer in manifest["layers"]
    ]


def image_file(client: RegistryClient, repository: str, digest: str, path: str) -> tuple:
    """``(content, mode)`` of a file in one platform's image (hard links followed), from the last layer with it."""
    for layer in reversed(image_layers(client, repository, digest)):
        for member in layer.getmembers():
            if member.name.lstrip("./") == path.lstrip("/") and (member.isfile() or member.islnk()):
                return layer.extractfile(member).read(), member.mode
    raise AssertionError(f"{path} is not in {repository}@{digest}")


def image_contents(client: RegistryClient, repository: str, digest: str) -> tuple:
    """``(blobs, paths)`` of one platform's image: the config and every file of every layer as bytes, and the
    path of every layer entry."""
    manifest = client.get_manifest(repository, digest).data
    blobs = [client.get_blob(repository, manifest["config"]["digest"])]
    paths = set()
    for layer in image_layers(client, repository, digest):
        blobs += [layer.extractfile(m).read() for m in layer.getmembers() if m.isfile()]
        paths.update(m.name.lstrip("./") for m in layer.getmembers())
    return blobs, paths


def _uleb(data: bytes, pos: int) -> tuple:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def arm_cpu_arch(section: bytes):
    """Tag_CPU_arch of an ``.ARM.attributes`` section (the "aeabi" file attributes); None when absent."""
    if not section or section[:1] != b"A":
        return None
    pos = 1
    while pos + 4 <= len(section):
        length = struct.unpack_from("<I", section, pos)[0]
        vendor, _sep, rest = section[pos + 4 : pos + length].partition(b"\0")
        pos += length
        if vendor != b"aeabi":
            continue
        i = 0
        while i + 5 <= len(rest):
            tag, size = rest[i], struct.unpack_from("<I", rest, i + 1)[0]
            body, i = rest[i + 5 : i + size], i + size
            if tag != 1:  # Tag_File
                continue
            j = 0
            while j < len(body):
                attr, j = _uleb(body, j)
                if attr in (4, 5, 67) or (attr > 32 and attr % 2):  # text values
                    j = body.index(b"\0", j) + 1
                    continue
                value, j = _uleb(body, j)
                if attr == 32:  # Tag_compatibility: a number and a text
                    j = body.index(b"\0", j) + 1
                if attr == 6:
                    return value
    return None


def elf_header(data: bytes) -> dict:
    """``{class, machine, flags, cpu_arch}`` of a little-endian ELF file (cpu_arch: 32-bit ARM only)."""
    assert data[:4] == b"\x7fELF", f"not an ELF file: {data[:16]!r}"
    assert data[5] == 1, "not little-endian"
    cls = data[4]
    machine = struct.unpack_from("<H", data, 0x12)[0]
    if cls == 1:
        flags, shoff = struct.unpack_from("<I", data, 0x24)[0], struct.unpack_from("<I", data, 0x20)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    else:
        flags, shoff = struct.unpack_from("<I", data, 0x30)[0], struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index):  # (name offset, file offset, size)
        base = shoff + index * shentsize
        if cls == 1:
            name, offset, size = struct.unpack_from("<I", data, base)[0], *struct.unpack_from("<II", data, base + 16)
        else:
            name, offset, size = struct.unpack_from("<I", data, base)[0], *struct.unpack_from("<QQ", data, base + 24)
        return name, offset, size

    cpu_arch = None
    if machine == 40 and shnum:
        _n, strtab, _s = section(shstrndx)
        for index in range(shnum):
            name, offset, size = section(index)
            if data[strtab + name : data.index(b"\0", strtab + name)] == b".ARM.attributes":
                cpu_arch = arm_cpu_arch(data[offset : offset + size])
    return {"class": cls, "machine": machine, "flags": flags, "cpu_arch": cpu_arch}


def assert_platform_code(data: bytes, platform: str, what: str) -> dict:
    """The ELF file is code of ``platform`` (e_machine and class); returns its header for further checks."""
    elf = elf_header(data)
    assert (elf["machine"], elf["class"]) == ELF[platform], f"{what} for {platform}: {elf}"
    return elf


def index_digests(ref: str) -> dict:
    """platform -> manifest digest of the index at ``ref``, read with skopeo (not the collection's client)."""
    data = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]).stdout)
    return {
        "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))): m[
            "digest"
        ]
        for m in data["manifests"]
    }


def check_uname(repo: str, result: dict, platforms: list) -> None:
    """skopeo sees exactly the platforms, and each image runs under its platform and says its machine."""
    assert index_digests(result["tags"][0]) == result["platform_digests"]
    assert sorted(result["platform_digests"]) == sorted(platforms)
    for platform in platforms:
        ref = f"{repo}@{result['platform_digests'][platform]}"
        assert run_image(ref, platform, "uname", "-m") == [UNAME[platform]], platform


# --------------------------------------------------------------------------- 1. cross-compilation


@pytest.mark.parametrize("engine", ["classic", "containerd"])
def test_go_cross_compiled_on_the_build_platform(testenv, repo, plain, tmp_path, engine):
    """``FROM --platform=$BUILDPLATFORM golang:1.19`` with GOOS/GOARCH/GOARM from TARGETOS/TARGETARCH/TARGETVARIANT.

    On both engines (per_platform on engine 1: four builds; multi on engine 2: one), each target compiled
    natively (no QEMU for the compiler) into a scratch image. GOARM=6 is proved by the binary itself
    (``go version -m`` reads the build settings the linker stored) and by the program, which prints
    GOOS/GOARCH and /v<GOARM> from its own build info.
    """
    ctx = context(tmp_path, "cross-go")
    args = {
        "context": str(ctx),
        "platforms": ALL,
        "tags": [f"{repo}:1"],
        "docker_host": testenv["engines"][engine]["docker_host"],
    }
    result = build(args)
    assert result["strategy"] == {"classic": "per_platform", "containerd": "multi"}[engine]
    assert set(result["base_images"]) == {"golang:1.19"}
    assert index_digests(f"{repo}:1") == result["platform_digests"]
    repository = repo.split("/", 1)[1]
    for platform in ALL:
        digest = result["platform_digests"][platform]
        binary, _mode = image_file(plain, repository, digest, "/hello")
        assert_platform_code(binary, platform, "/hello")
        proc = subprocess.run(
            ["docker", "run", "-i", "--rm", "golang:1.19", "sh", "-c", GO_VERSION_M],
            input=binary,
            capture_output=True,
            check=True,
            timeout=300,
        )
        settings = dict(
            line.split("\t")[2].split("=", 1)
            for line in proc.stdout.decode().splitlines()
            if line.startswith("\tbuild\t") and "=" in line
        )
        arch = platform.split("/")[1]
        assert (settings["GOOS"], settings["GOARCH"], settings["CGO_ENABLED"]) == ("linux", arch, "0"), settings
        if arch == "arm":
            assert settings["GOARM"] == platform[-1], f"{platform}: {settings}"
        assert run_image(f"{repo}@{digest}", platform) == [f"hello from {platform}"]
    assert build(args)["changed"] is False


def test_c_cross_compiled_with_debian_cross_gcc(testenv, repo, plain, tmp_path):
    """``FROM --platform=$BUILDPLATFORM debian:bookworm`` installing Debian's cross compilers with apt.

    Engine 1, per_platform: the four builds share the build-platform stage (apt-get install of
    gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf and gcc-arm-linux-gnueabi; BuildKit runs an identical step
    once). Not engine 2: its build containers have no route out (the test environment starts it with
    iptables and masquerading off), so apt-get cannot reach the Debian mirror there. arm/v6 is
    ``arm-linux-gnueabi-gcc -march=armv6 -marm`` (armel's soft-float ABI, ARMv6 instructions): the test reads
    Tag_CPU_arch v6 from the binary's ``.ARM.attributes`` and the soft-float flag from its ELF header.
    """
    ctx = context(tmp_path, "cross-c")
    result = build({"context": str(ctx), "platforms": ALL, "tags": [f"{repo}:1"]})
    assert result["strategy"] == "per_platform"
    assert set(result["base_images"]) == {"debian:bookworm", "busybox"}
    assert index_digests(f"{repo}:1") == result["platform_digests"]
    repository = repo.split("/", 1)[1]
    for platform in ALL:
        digest = result["platform_digests"][platform]
        binary, mode = image_file(plain, repository, digest, "/usr/local/bin/hello")
        assert mode & 0o111, oct(mode)
        elf = assert_platform_code(binary, platform, "hello")
        if platform == "linux/arm/v7":
            assert elf["cpu_arch"] == ARM_V7 and elf["flags"] & EF_ARM_HARD_FLOAT, elf
        if platform == "linux/arm/v6":
            assert elf["cpu_arch"] == ARM_V6 and elf["flags"] & EF_ARM_SOFT_FLOAT, elf
        assert run_image(f"{repo}@{digest}", platform, "/usr/local/bin/hello") == [f"hello from {platform}"]
        # the busybox of the final stage is that platform's too (arm/v6: armel, soft-float, at most ARMv6)
        busybox = assert_platform_code(image_file(plain, repository, digest, "/bin/busybox")[0], platform, "busybox")
        if platform == "linux/arm/v7":
            assert busybox["flags"] & EF_ARM_HARD_FLOAT, busybox
        if platform == "linux/arm/v6":
            assert busybox["flags"] & EF_ARM_SOFT_FLOAT and (busybox["cpu_arch"] or 99) <= ARM_V6, busybox


# --------------------------------------------------------------------------- 2. ARG before FROM, stages, target


def test_arg_before_from_stages_and_target_through_the_release_role(testenv, repo, tmp_path):
    """The release role (``release_target``) on a Dockerfile with global ARGs, ``COPY --from`` and two final stages.

    The default build is the last stage (``release``); ``release_target: debug`` builds the other one. The
    global ``BASE_IMAGE`` is given as a build arg (resolved by the fingerprint after substitution) and
    ``FLAVOUR`` reaches the stage that declares it again. A second run of each changes nothing.
    """
    ctx = context(tmp_path, "multistage")
    book = tmp_path / "release.yml"
    book.write_text(
        yaml.safe_dump(
            [{"name": "Release", "hosts": "localhost", "gather_facts": False, "roles": ["fleet.multiarch.release"]}]
        )
    )
    base = {
        "release_context": str(ctx),
        "release_repository": repo,
        "release_platforms": ALL,
        "release_moving_tags": [],
        "release_build_args": {"BASE_IMAGE": f"{testenv['registry']}/library/busybox:1.35", "FLAVOUR": "special"},
        "release_base_image_registry": testenv["registry"],
    }
    records = {}
    for target in ("", "debug"):
        name = target or "release"
        variables = {**base, "release_tag": name, "release_target": target}
        variables["release_record_path"] = str(tmp_path / f"{name}.json")
        for attempt in (1, 2):
            proc = run_playbook(book, variables, check=False)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
            changed = play_recap(proc.stdout)["localhost"]["changed"]
            assert (changed > 0) if attempt == 1 else (changed == 0), (target, attempt, proc.stdout[-3000:])
        records[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert records["release"]["fingerprint"] != records["debug"]["fingerprint"]
    for name, record in records.items():
        assert sorted(record["platforms"]) == sorted(ALL)
        assert index_digests(f"{repo}:{name}") == record["platforms"]
        for platform, digest in record["platforms"].items():
            out = run_image(f"{repo}@{digest}", platform)
            expected = [f"special build for {platform}", "multistage app"]
            assert out == ([*expected, "debug stage"] if name == "debug" else expected), (name, platform, out)
            assert run_image(f"{repo}@{digest}", platform, "uname", "-m") == [UNAME[platform]]


# --------------------------------------------------------------------------- 3. .dockerignore with exceptions


def test_dockerignore_with_exceptions_and_the_fingerprint(testenv, repo, tmp_path):
    """``*`` then ``!keep/**`` then ``keep/**/*.tmp``: the image holds what the fingerprint counted, and only
    a change to a file that is sent builds again (engine 1, four platforms)."""
    ctx = context(tmp_path, "dockerignore")
    args = {"context": str(ctx), "platforms": ALL, "tags": [f"{repo}:1"]}
    first = build(args)
    assert first["built"] is True and first["context"]["files"] == 2
    check_uname(repo, first, ALL)
    listing = run_image(f"{repo}@{first['platform_digests']['linux/arm/v6']}", "linux/arm/v6")
    assert sorted(listing) == ["/ctx/keep/app.txt", "/ctx/keep/sub/data.txt"]

    for ignored in ("notes.md", "drop/big.txt", "keep/sub/scratch.tmp", "drop/new.txt"):
        (ctx / ignored).write_text(f"changed {RUN_ID}\n")
        again = build(args)
        assert again["changed"] is False and again["built"] is False, ignored
    (ctx / "keep" / "app.txt").write_text(f"kept, version 2 {RUN_ID}\n")
    changed = build(args)
    assert changed["built"] is True and changed["digest"] != first["digest"]
    digest = changed["platform_digests"]["linux/arm64"]
    assert run_image(f"{repo}@{digest}", "linux/arm64", "cat", "/ctx/keep/app.txt") == [f"kept, version 2 {RUN_ID}"]


# --------------------------------------------------------------------------- 4. BuildKit features


@pytest.mark.parametrize("engine", ["classic", "containerd"])
def test_cache_mount_secret_mount_and_copy_chmod(testenv, repo, plain, tmp_path, engine):
    """``RUN --mount=type=cache``, ``RUN --mount=type=secret`` (image_build's secrets) and ``COPY --chmod``.

    Both engines' built-in Dockerfile frontends have all three (docker 20.10's BuildKit 0.8 included). The
    cache mount keeps its content from one build to the next and stays out of the image; the secret is read
    during the build (its sha256 is in the image) but its value is in no layer, config, log or result.
    """
    ctx = context(tmp_path, "buildkit-features")
    assert (ctx / "tool.sh").stat().st_mode & 0o777 == 0o644
    value = f"s3cret-{RUN_ID}-{engine}"
    args = {
        "context": str(ctx),
        "platforms": ALL,
        "tags": [f"{repo}:1"],
        "docker_host": testenv["engines"][engine]["docker_host"],
        "secrets": [{"id": "token", "value": value}],
    }
    repository = repo.split("/", 1)[1]
    runs = {}
    for attempt in (1, 2):
        result = build({**args, "build_args": {"RUN_ID": f"{RUN_ID}-{attempt}"}})
        assert result["built"] is True
        assert value not in json.dumps(result) and value not in Path(result["log_path"]).read_text()
        assert index_digests(f"{repo}:1") == result["platform_digests"]
        for platform in ALL:
            digest = result["platform_digests"][platform]
            out = dict(line.split(" ", 1) for line in run_image(f"{repo}@{digest}", platform))
            assert out["machine"] == UNAME[platform]
            assert out["token-sha256"] == hashlib.sha256(value.encode()).hexdigest()
            runs.setdefault(platform, []).append(int(out["cache-runs"]))
            if attempt == 2:
                _tool, mode = image_file(plain, repository, digest, "/usr/local/bin/tool")
                assert mode & 0o777 == 0o755, oct(mode)
                blobs, paths = image_contents(plain, repository, digest)
                assert not [b for b in blobs if value.encode() in b], f"the secret is in the image for {platform}"
                assert "var/cache/app/runs" not in paths and "usr/local/bin/tool" in paths, platform
    for platform, counts in runs.items():
        assert counts[1] > counts[0] >= 1, (platform, counts)


def test_heredocs_on_the_engine_whose_frontend_has_them(testenv, repo, tmp_path):
    """``RUN <<EOT`` and ``COPY <<EOT``: engine 2 (docker 26, Dockerfile frontend 1.7 built in), four platforms.

    Engine 1's docker 20.10 has frontend 1.2 built in, which has no heredocs, and a ``# syntax=`` line
    cannot fetch a newer one here (no Docker Hub): there the build fails on the heredoc's first line,
    which this test checks too, so the gap is seen rather than skipped.
    """
    ctx = context(tmp_path, "buildkit-features")
    args = {"context": str(ctx), "dockerfile": "Dockerfile.heredoc", "platforms": ALL, "tags": [f"{repo}:1"]}
    result = build({**args, "docker_host": testenv["engines"]["containerd"]["docker_host"]})
    assert result["strategy"] == "multi"
    assert index_digests(f"{repo}:1") == result["platform_digests"]
    for platform in ALL:
        out = run_image(f"{repo}@{result['platform_digests'][platform]}", platform)
        assert out == [
            f"written by a heredoc on {UNAME[platform]}",
            "second line of the same RUN",
            "mode=heredoc",
        ], platform
        assert run_image(f"{repo}@{result['platform_digests'][platform]}", platform, "uname", "-m") == [UNAME[platform]]

    old = run_module(MODULE, {**args, "tags": [f"{repo}:old"], "platforms": ["linux/amd64"], "force": True})
    assert old["failed"] is True
    assert "dockerfile parse error line 5: unknown instruction: SET" in old["msg"], old["msg"]


# --------------------------------------------------------------------------- 5. USER and sudo


@pytest.mark.parametrize("platform", DEBIAN)
def test_an_unprivileged_user_runs_sudo_during_the_build(testenv, repo, tmp_path, platform):
    """``USER builder`` then ``RUN sudo ...`` (sudo from apt, NOPASSWD), on debian:bookworm for each of its platforms.

    One build per platform (engine 1), so a failure names the platform. sudo is setuid root: under QEMU it
    works only when binfmt_misc's C flag makes the kernel run the emulator with the credentials of the program
    (fleet.multiarch.binfmt's default flags PCF); with F alone, amd64 passes and the ARM builds fail with
    "sudo: effective uid is not 0".
    """
    ctx = context(tmp_path, "sudo")
    result = run_module(MODULE, {"context": str(ctx), "platforms": [platform], "tags": [f"{repo}:1"]})
    assert not result.get("failed"), f"{platform}: {result.get('msg')}" + (
        " (binfmt_misc flags of the emulators: see /proc/sys/fs/binfmt_misc)" if platform != "linux/amd64" else ""
    )
    out = run_image(f"{repo}@{result['platform_digests'][platform]}", platform)
    assert out == [UNAME[platform], "builder", "root 644", "written by root at the request of builder"], out


# --------------------------------------------------------------------------- 6. the syntax line


@pytest.mark.parametrize("engine", ["classic", "containerd"])
def test_a_syntax_line_without_docker_hub_fails_with_what_to_do(testenv, repo, tmp_path, engine):
    """``# syntax=docker/dockerfile:1`` makes BuildKit fetch the frontend image from Docker Hub, unreachable
    here: image_build names the image and says to mirror it (or to drop the line), on both engines. The same
    line pointing at a registry that lacks the image gives the registry's answer in the same message."""
    ctx = context(tmp_path, "syntax-line")
    args = {
        "context": str(ctx),
        "platforms": ["linux/amd64", "linux/arm/v6"],
        "tags": [f"{repo}:1"],
        "docker_host": testenv["engines"][engine]["docker_host"],
    }
    result = run_module(MODULE, args)
    assert result["failed"] is True
    msg = result["msg"]
    assert "# syntax=docker/dockerfile:1" in msg and "frontend image docker.io/docker/dockerfile:1" in msg, msg
    assert "Mirror that image into a registry the builder reaches" in msg, msg
    assert "# syntax=REGISTRY/docker/dockerfile:1" in msg and "drop the line" in msg, msg
    assert result["log_path"] in msg

    mirror = f"{testenv['registry']}/docker/dockerfile:1"
    text = (ctx / "Dockerfile").read_text().replace("# syntax=docker/dockerfile:1", f"# syntax={mirror}")
    (ctx / "Dockerfile").write_text(text)
    result = run_module(MODULE, args)
    assert result["failed"] is True
    assert f"frontend image {mirror}" in result["msg"] and "not found" in result["msg"], result["msg"]

    (ctx / "Dockerfile").write_text(text.replace(f"# syntax={mirror}\n", ""))
    assert build(args)["built"] is True  # without the line, the built-in frontend builds it
