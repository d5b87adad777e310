"""Unit tests for _build: .dockerignore, context hash, FROM parsing, fingerprint, strategy, argv, captured output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import BuildLog

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "build"
BUSYBOX = "sha256:11e88decc3b61ce4db44b1747e24483110fd1b29724a7d4a33b68b1a8258d089"

# --------------------------------------------------------------------------- .dockerignore


def test_read_dockerignore_cleans_like_the_engine():
    text = "# comment\n\n/scratch/\n./a//b/../c\n!keep.tmp\n*.tmp\n!\n.\n"
    assert bd.read_dockerignore(text) == [("scratch", False), ("a/c", False), ("keep.tmp", True), ("*.tmp", False)]


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ([("*.tmp", False)], "a.tmp", True),
        ([("*.tmp", False)], "dir/a.tmp", False),  # * stays in one component, as in the engine
        ([("**/*.tmp", False)], "dir/sub/a.tmp", True),
        ([("**/*.tmp", False)], "a.tmp", True),
        ([("scratch", False)], "scratch/deep/file", True),  # a parent match excludes what is below
        ([("docs/**", False)], "docs/a/b.md", True),
        ([("*.tmp", False), ("keep.tmp", True)], "keep.tmp", False),
        ([("keep.tmp", True), ("*.tmp", False)], "keep.tmp", True),  # the last match wins
        ([("dir/?.txt", False)], "dir/a.txt", True),
        ([("dir/?.txt", False)], "dir/ab.txt", False),
        ([("[ab].txt", False)], "b.txt", True),
        ([("[!ab].txt", False)], "b.txt", False),
        ([("a/**/z", False)], "a/z", True),
        ([("a/**/z", False)], "a/b/c/z", True),
        ([], "anything", False),
    ],
)
def test_ignore_matcher(patterns, path, excluded):
    assert bd.IgnoreMatcher(patterns).excluded(path) is excluded


def test_prune_only_without_exceptions_below():
    assert bd.IgnoreMatcher([("scratch", False)]).prune("scratch")
    assert not bd.IgnoreMatcher([("scratch", False), ("scratch/keep", True)]).prune("scratch")
    assert bd.IgnoreMatcher([("scratch", False), ("other/keep", True)]).prune("scratch")


def make_context(root: Path) -> None:
    (root / "scratch").mkdir()
    (root / "scratch" / "big.bin").write_bytes(b"x" * 100)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "notes.tmp").write_text("scratch\n")
    (root / "keep.tmp").write_text("kept\n")
    (root / "Dockerfile").write_text("FROM busybox\nCOPY . /app\n")
    (root / ".dockerignore").write_text("scratch/\n*.tmp\n!keep.tmp\n")


def context_hash(root: Path) -> dict:
    return bd.hash_context(
        str(root), bd.IgnoreMatcher(bd.load_ignore(bd.ignore_file(str(root), str(root / "Dockerfile"))))
    )


def test_hash_context_honours_dockerignore(tmp_path):
    make_context(tmp_path)
    first = context_hash(tmp_path)
    assert first["files"] == 4  # Dockerfile, .dockerignore, keep.tmp, src/app.py
    (tmp_path / "scratch" / "big.bin").write_bytes(b"y" * 100)
    (tmp_path / "notes.tmp").write_text("changed\n")
    os.utime(tmp_path / "src" / "app.py", (1, 1))  # times are not content
    assert context_hash(tmp_path) == first
    (tmp_path / "keep.tmp").write_text("changed\n")
    assert context_hash(tmp_path)["digest"] != first["digest"]


def test_hash_context_sees_modes_names_and_links(tmp_path):
    make_context(tmp_path)
    first = context_hash(tmp_path)["digest"]
    os.chmod(tmp_path / "src" / "app.py", 0o700)
    second = context_hash(tmp_path)["digest"]
    assert second != first
    (tmp_path / "src" / "app.py").rename(tmp_path / "src" / "main.py")
    third = context_hash(tmp_path)["digest"]
    assert third != second
    os.symlink("main.py", tmp_path / "src" / "link")
    assert context_hash(tmp_path)["digest"] != third
    (tmp_path / "empty").mkdir()  # an empty directory can be copied, so it counts
    assert context_hash(tmp_path)["digest"] != third


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    make_context(tmp_path)
    (tmp_path / "Dockerfile.dockerignore").write_text("src/\n")
    assert bd.ignore_file(str(tmp_path), str(tmp_path / "Dockerfile")).endswith("Dockerfile.dockerignore")
    assert bd.ignore_file(str(tmp_path), str(tmp_path / "other")) == str(tmp_path / ".dockerignore")


# --------------------------------------------------------------------------- Dockerfile

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE=debian:bookworm
ARG TOOLS
FROM --platform=$BUILDPLATFORM ${BASE} AS build
RUN --mount=type=cache,target=/var/cache/apt \\
    --mount=from=127.0.0.1:5000/fleet/tools:1,target=/tools \\
    echo building for $TARGETARCH
FROM ${TOOLS:-busybox} AS tools
FROM scratch AS empty
FROM build
COPY --from=tools /bin/busybox /bin/
COPY --from=0 /etc/os-release /
COPY --from=127.0.0.1:5000/fleet/certs@sha256:%s /ca.crt /
""" % ("a" * 64)


def test_parse_dockerfile_finds_every_image():
    parsed = bd.parse_dockerfile(DOCKERFILE)
    assert parsed["global_args"] == {"BASE": "debian:bookworm", "TOOLS": None}
    assert [s["image"] for s in parsed["stages"]] == ["${BASE}", "${TOOLS:-busybox}", "scratch", "build"]
    assert parsed["stages"][0] == {"image": "${BASE}", "name": "build", "platform": "$BUILDPLATFORM"}
    assert parsed["mounts_from"] == ["127.0.0.1:5000/fleet/tools:1"]
    images = bd.base_images(parsed, {}, ["linux/amd64", "linux/arm64"], "linux/amd64")
    assert images == [
        "127.0.0.1:5000/fleet/certs@sha256:" + "a" * 64,
        "127.0.0.1:5000/fleet/tools:1",
        "busybox",
        "debian:bookworm",
    ]


def test_build_args_and_target_platform_change_the_bases():
    parsed = bd.parse_dockerfile("ARG BASE\nFROM ${BASE}-$TARGETARCH\nFROM other AS x\n")
    assert bd.base_images(parsed, {"BASE": "app", "UNDECLARED": "y"}, ["linux/arm64", "arm"], "linux/amd64") == [
        "app-arm",
        "app-arm64",
        "other",
    ]
    with pytest.raises(bd.BuildError, match="expands to nothing"):
        bd.base_images(bd.parse_dockerfile("ARG BASE\nFROM $BASE\n"), {}, ["linux/amd64"], "linux/amd64")


def test_escape_directive_and_continuations():
    text = "# escape=`\nFROM busybox\nRUN echo a `\n  # a comment inside\n  b\nFROM `\n  127.0.0.1:5000/x:1\n"
    assert bd.logical_lines(text) == ["FROM busybox", "RUN echo a b", "FROM 127.0.0.1:5000/x:1"]


def test_dockerfile_without_from():
    with pytest.raises(bd.BuildError, match="no FROM"):
        bd.parse_dockerfile("# nothing\nRUN true\n")


@pytest.mark.parametrize(
    ("image", "hub", "expected"),
    [
        ("busybox", "127.0.0.1:5000", ("127.0.0.1:5000/library/busybox", True)),
        ("fleet/app:1", "127.0.0.1:5000", ("127.0.0.1:5000/fleet/app:1", True)),
        ("127.0.0.1:5443/fleet/app:1", "127.0.0.1:5000", ("127.0.0.1:5443/fleet/app:1", False)),
        ("localhost/app", "", ("localhost/app", False)),
        ("registry.example.com/app", "", ("registry.example.com/app", False)),
        ("busybox", "", ("", True)),
    ],
)
def test_normalize_base(image, hub, expected):
    assert bd.normalize_base(image, hub) == expected


# --------------------------------------------------------------------------- fingerprint


def fp(**changes) -> str:
    base = {
        "context": "sha256:" + "c" * 64,
        "dockerfile": "FROM busybox\n",
        "build_args": {"A": "1"},
        "target": "",
        "platforms": ["linux/amd64", "linux/arm64"],
        "labels": {},
        "annotations": {},
        "bases": {"busybox": BUSYBOX},
        "attestations": False,
    }
    base.update(changes)
    return bd.fingerprint(**base)


def test_fingerprint_changes_with_every_input_but_not_with_order():
    same = fp()
    assert same == fp(platforms=["linux/arm64", "linux/amd64"])
    variants = [
        fp(context="sha256:" + "d" * 64),
        fp(dockerfile="FROM busybox\nRUN true\n"),
        fp(build_args={"A": "2"}),
        fp(target="final"),
        fp(platforms=["linux/amd64", "linux/arm64", "linux/arm/v7"]),
        fp(labels={"a": "b"}),
        fp(annotations={"a": "b"}),
        fp(bases={"busybox": "sha256:" + "e" * 64}),
        fp(attestations=True),
    ]
    assert len({same, *variants}) == len(variants) + 1


def test_normalize_platform_list():
    assert bd.normalize_platform_list(["amd64", "aarch64", "armhf", "linux/arm64/v8"]) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
    with pytest.raises(bd.BuildError, match="unknown platform 'linux/sparc99'"):
        bd.normalize_platform_list(["linux/sparc99"])


# --------------------------------------------------------------------------- engines and strategy


def test_engine_info_from_captured_docker_info():
    classic = bd.parse_engine_info((FIXTURES / "info-classic.json").read_text())
    containerd = bd.parse_engine_info((FIXTURES / "info-containerd.json").read_text())
    assert classic == {"image_store": "classic", "mirrors": ["127.0.0.1:5000"]}
    assert containerd == {"image_store": "containerd", "mirrors": ["127.0.0.1:5000"]}


ALL3 = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


@pytest.mark.parametrize(
    "case",
    [
        ("auto", "docker", "classic", ALL3, {}, "per_platform"),
        ("auto", "docker", "containerd", ALL3, {}, "multi"),
        ("auto", "docker-container", "", ALL3, {}, "multi"),
        ("auto", "remote", "", ALL3, {}, "multi"),
        ("auto", "docker-container", "", ALL3, {"linux/arm64": "pi5"}, "per_platform"),
        ("auto", "docker", "classic", ["linux/arm64"], {}, "multi"),
        ("per_platform", "docker-container", "", ALL3, {}, "per_platform"),
        ("multi", "docker", "containerd", ALL3, {}, "multi"),
    ],
)
def test_choose_strategy(case):
    *given, expected = case  # requested, driver, image store, platforms, platform_builders
    strategy, reason = bd.choose_strategy(*given)
    assert strategy == expected
    assert reason


def test_multi_refused_where_it_cannot_work():
    with pytest.raises(bd.BuildError, match="classic image store: use strategy per_platform"):
        bd.choose_strategy("multi", "docker", "classic", ALL3, {})
    with pytest.raises(bd.BuildError, match="platform_builders needs strategy per_platform"):
        bd.choose_strategy("multi", "docker-container", "", ALL3, {"linux/arm64": "pi5"})


def test_supported_platforms_from_captured_inspect():
    containerd = bx.parse_inspect((FIXTURES / "inspect-containerd-default.txt").read_text())
    # the containerd engine's BuildKit does not list arm/v7, though the host's QEMU runs it
    assert bd.unsupported(ALL3, bd.builder_supports(containerd, [])) == ["linux/arm/v7"]
    assert bd.unsupported(ALL3, bd.builder_supports(containerd, ["linux/arm/v7", "linux/arm/v6"])) == []
    classic = bx.parse_inspect((FIXTURES / "inspect-classic-default.txt").read_text())
    assert bd.unsupported([*ALL3, "linux/loong64"], bd.builder_supports(classic, [])) == ["linux/loong64"]


# --------------------------------------------------------------------------- argv


def test_build_argv_full():
    secret_argv, _env = bd.secret_args([{"id": "tok", "value": "s3cret"}])
    argv = bd.build_argv(
        context="/ctx",
        dockerfile="/ctx/Dockerfile",
        platforms=["linux/amd64", "linux/arm64"],
        builder="fleet",
        output=bd.image_output("127.0.0.1:5000/app:1", True, False),
        build_args={"B": "2", "A": "$HOME"},
        target="final",
        labels={"l": "v"},
        annotations={"org.opencontainers.image.version": "1"},
        secret_argv=secret_argv,
        ssh=["default"],
        cache_from=["127.0.0.1:5000/app:cache"],
        cache_to=["type=inline"],
        pull=True,
        no_cache=True,
        metadata_file="/work/m.json",
    )
    assert argv == [
        "buildx", "build", "--progress", "plain", "--builder", "fleet",
        "--file", "/ctx/Dockerfile", "--platform", "linux/amd64,linux/arm64",
        "--build-arg", "A=$HOME", "--build-arg", "B=2", "--target", "final", "--label", "l=v",
        "--annotation", "index:org.opencontainers.image.version=1",
        "--secret", "id=tok,env=FLEET_BUILD_SECRET_0", "--ssh", "default",
        "--cache-from", "type=registry,ref=127.0.0.1:5000/app:cache", "--cache-to", "type=inline",
        "--pull", "--no-cache", "--provenance", "false", "--sbom", "false",
        "--output", "type=image,name=127.0.0.1:5000/app:1,push=true", "--metadata-file", "/work/m.json",
        "--", "/ctx",
    ]  # fmt: skip
    assert "s3cret" not in " ".join(argv)


def test_single_image_annotations_go_on_the_manifest():
    argv = bd.build_argv(
        context=".", dockerfile="D", platforms=["linux/arm64"], annotations={"a": "1"}, annotation_level="manifest"
    )
    assert argv[argv.index("--annotation") + 1] == "manifest:a=1"


def test_attestations_and_load():
    argv = bd.build_argv(context=".", dockerfile="D", platforms=["linux/arm64"], attestations=True, load=True)
    assert argv[-7:] == ["--provenance", "mode=min", "--sbom", "true", "--load", "--", "."]


def test_secret_args(tmp_path):
    secret_file = tmp_path / "npmrc"
    secret_file.write_text("token")
    argv, env = bd.secret_args(
        [{"id": "npm", "file": str(secret_file)}, {"id": "gh", "env": "GH_TOKEN"}, {"id": "v", "value": "x"}]
    )
    assert argv == [
        "--secret", f"id=npm,src={secret_file}", "--secret", "id=gh,env=GH_TOKEN",
        "--secret", "id=v,env=FLEET_BUILD_SECRET_2",
    ]  # fmt: skip
    assert env == {"FLEET_BUILD_SECRET_2": "x"}
    with pytest.raises(bd.BuildError, match="does not exist"):
        bd.secret_args([{"id": "npm", "file": str(tmp_path / "missing")}])
    with pytest.raises(bd.BuildError, match="exactly one of"):
        bd.secret_args([{"id": "npm", "env": "A", "value": "b"}])
    with pytest.raises(bd.BuildError, match="may not contain"):
        bd.secret_args([{"id": "a,b", "value": "b"}])


def test_output_by_digest():
    assert bd.image_output("127.0.0.1:5000/app", True, True) == (
        "type=image,name=127.0.0.1:5000/app,push-by-digest=true,name-canonical=true,push=true"
    )


def test_build_tag_is_the_fingerprint_s_own_and_a_valid_tag():
    fp = "sha256:5d4c1b1f6b2c8d6c0a0f8a1e3b6f3f0b2e5a7c9d1e3f5a7b9c1d3e5f7a9b1c3d"
    assert bd.build_tag("1.0", fp) == "1.0-build-5d4c1b1f6b2c"
    assert bd.build_tag("1.0", "sha256:" + "0" * 64) != bd.build_tag("1.0", fp)
    long = bd.build_tag("x" * 128, fp)
    assert len(long) == 128 and long.endswith("-build-5d4c1b1f6b2c")
    assert bd.build_tag("1.0", fp, "linux/arm/v7") == "1.0-build-5d4c1b1f6b2c-linux-arm-v7"
    long = bd.build_tag("x" * 128, fp, "linux/arm64")
    assert len(long) == 128 and long.endswith("-build-5d4c1b1f6b2c-linux-arm64")


# --------------------------------------------------------------------------- captured buildx output


def test_metadata_classic_store_gives_the_pushed_manifest_digest():
    # verified when captured: the registry's Docker-Content-Digest for the pushed tag was this digest,
    # while containerimage.config.digest is the image ID (the config blob)
    meta = bd.parse_metadata((FIXTURES / "metadata-classic-arm64.json").read_text())
    assert meta["digest"] == "sha256:b1f48de48a8a4d756499fdee50537aa399a9925c8b5b13b2d9457ad5a57adfca"
    assert meta["config_digest"].startswith("sha256:56f3ea1a")


def test_metadata_containerd_multi_gives_the_index():
    meta = bd.parse_metadata((FIXTURES / "metadata-containerd-multi.json").read_text())
    assert meta["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert (
        meta["digest"]
        == json.loads((FIXTURES / "metadata-containerd-multi.json").read_text())["containerimage.descriptor"]["digest"]
    )


def test_failing_step_from_a_captured_log():
    step = bd.failing_step((FIXTURES / "log-failing-run.txt").read_text())
    assert step["step"] == '[3/3] RUN echo "something went wrong on $(uname -m)" >&2 && exit 3'
    assert step["tail"] == ["something went wrong on aarch64"]
    assert step["error"].startswith("failed to solve: executor failed running")
    assert not bd.emulation_hint((FIXTURES / "log-failing-run.txt").read_text())


def test_a_push_the_registry_broke_off_is_recognised():
    """Captured: the engine's push of a docker-driver build answered 500 by the registry (log-push-500.txt)."""
    step = bd.failing_step((FIXTURES / "log-push-500.txt").read_text())
    assert step["step"].startswith("pushing 127.0.0.1:") and step["step"].endswith(" with docker")
    assert bd.registry_push_fault(step) == "500 Internal Server Error"
    # a failing RUN step, a refusal or a missing tag are not the registry's fault: no second push
    assert bd.registry_push_fault(bd.failing_step((FIXTURES / "log-failing-run.txt").read_text())) == ""


@pytest.mark.parametrize(
    ("step", "error", "fault"),
    [
        (
            "exporting to image",
            "failed to push r:1: unexpected status: 503 Service Unavailable",
            "503 Service Unavailable",
        ),
        (
            "exporting to image",
            "failed to copy: read tcp 1->2: read: connection reset by peer",
            "connection reset by peer",
        ),
        ("pushing r:1 with docker", "Put http://r/v2/a/blobs/uploads/x: unexpected EOF", "unexpected EOF"),
        ("exporting to image", "failed to push r:1: unexpected status: 401 Unauthorized", ""),
        ("exporting to image", "failed to push r:1: denied: requested access to the resource is denied", ""),
        ("[2/2] RUN curl -f http://x", "process did not complete successfully: 500 Internal Server Error", ""),
        ("exporting to image", "image layer of 5000 bytes is too large", ""),
    ],
)
def test_registry_push_fault_only_for_a_server_fault_while_pushing(step, error, fault):
    assert bd.registry_push_fault({"step": step, "error": error}) == fault


def test_failing_step_with_platform_prefixes():
    log = "[linux/arm64] #5 [2/2] RUN false\n[linux/arm64] #5 0.1 out\n[linux/arm64] #5 ERROR: exit code: 1\n"
    assert bd.failing_step(log) == {
        "step": "[2/2] RUN false",
        "tail": ["out"],
        "error": "exit code: 1",
        "platform": "linux/arm64",
    }
    assert bd.failing_step("no steps here\n")["step"] == ""


# --------------------------------------------------------------------------- the syntax line


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ("# syntax=docker/dockerfile:1\nFROM busybox\n", "docker/dockerfile:1"),
        ("#syntax = docker/dockerfile:1.7-labs\n# escape=`\nFROM busybox\n", "docker/dockerfile:1.7-labs"),
        ("# escape=\\\n# syntax=m.local/docker/dockerfile:1\nFROM busybox\n", "m.local/docker/dockerfile:1"),
        ("# a comment first\n# syntax=docker/dockerfile:1\nFROM busybox\n", ""),  # no longer a directive
        ("FROM busybox\n# syntax=docker/dockerfile:1\n", ""),
        ("FROM busybox\n", ""),
    ],
)
def test_syntax_directive(text, syntax):
    assert bd.syntax_directive(text) == syntax


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("docker/dockerfile:1", "docker.io/docker/dockerfile:1"),
        ("docker-image://docker.io/docker/dockerfile:1", "docker.io/docker/dockerfile:1"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("127.0.0.1:5000/docker/dockerfile", "127.0.0.1:5000/docker/dockerfile:latest"),
        ("docker/dockerfile@sha256:ab", "docker.io/docker/dockerfile@sha256:ab"),
    ],
)
def test_normalize_image(name, normal):
    assert bd.normalize_image(name) == normal


HUB_ERROR = (
    'failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": dial tcp: lookup'
    " registry-1.docker.io on 10.255.255.53:53: no such host"
)


@pytest.mark.parametrize(
    ("fixture", "syntax", "error"),
    [
        # engine 1 (docker 20.10, BuildKit 0.8), the module's log of two concurrent builds ([platform] prefixes)
        ("log-syntax-frontend-classic.txt", "docker/dockerfile:1", HUB_ERROR),
        # engine 2 (docker 26): docker-image:// in the step title, "failed to resolve source metadata" at the end
        ("log-syntax-frontend-containerd.txt", "docker/dockerfile:1", HUB_ERROR),
        # a reachable registry without the image
        (
            "log-syntax-frontend-not-found.txt",
            "127.0.0.1:5000/docker/dockerfile:1.7",
            "127.0.0.1:5000/docker/dockerfile:1.7: not found",
        ),
    ],
)
def test_frontend_failure_from_captured_logs(fixture, syntax, error):
    log = (FIXTURES / fixture).read_text()
    assert bd.frontend_failure(log, syntax) == error
    assert bd.frontend_failure(log, "") == ""  # a Dockerfile without the line: not this failure
    assert bd.frontend_failure(log, "other/frontend:1") == ""


def test_frontend_failure_only_at_the_frontend_step():
    assert bd.frontend_failure((FIXTURES / "log-failing-run.txt").read_text(), "docker/dockerfile:1") == ""
    # the last line alone is enough (output whose step lines were lost)
    tail = "ERROR: failed to solve: failed to resolve source metadata for docker.io/docker/dockerfile:1: denied\n"
    assert bd.frontend_failure(tail, "docker/dockerfile:1") == "denied"


def test_frontend_message_names_the_image_and_the_remedies():
    msg = bd.frontend_message("docker/dockerfile:1", "no such host")
    assert "docker.io/docker/dockerfile:1" in msg and "(no such host)" in msg
    assert "Mirror that image into a registry the builder reaches" in msg
    assert "# syntax=REGISTRY/docker/dockerfile:1" in msg and "drop the line" in msg


def test_secret_values_of_each_kind_longest_first(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("first-line-of-the-file\nabc\nsecond-line\n")
    secrets = [
        {"id": "a", "value": "the-value"},
        {"id": "b", "env": "TOKEN"},
        {"id": "c", "file": str(secret_file)},
        {"id": "d", "env": "UNSET"},
    ]
    got = bd.secret_values(secrets, environ={"TOKEN": "from-the-environment"}, read_file=lambda p: open(p).read())
    assert got == ["first-line-of-the-file", "from-the-environment", "second-line", "the-value"]  # "abc": too short


def test_mask_replaces_every_occurrence():
    values = bd.secret_values([{"id": "a", "value": "hunter22"}, {"id": "b", "value": "hunter2222"}])
    assert bd.mask("x hunter2222 y hunter22 z", values) == "x ******** y ******** z"


def test_build_log_is_private_and_masks_the_secrets(tmp_path):
    log = BuildLog(str(tmp_path / "logs" / "build.log"), ["s3cret-value"])
    log.write("linux/arm64", b"#5 0.1 the token is s3cr")
    log.write("linux/arm64", b"et-value\n#5 DONE\n")  # a secret cut between two chunks of output
    log.close()
    assert oct((tmp_path / "logs" / "build.log").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "logs").stat().st_mode & 0o777) == "0o700"
    assert log.read() == "[linux/arm64] #5 0.1 the token is ********\n[linux/arm64] #5 DONE\n"
