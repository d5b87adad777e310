"""Unit tests for _buildx: parsers on captured real output, the CLI runner's argv and env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "buildx"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# parsers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version", "revision"),
    [
        (fixture("version-debian.txt"), "0.13.1+ds1", "0.13.1+ds1-3"),
        ("github.com/docker/buildx v0.13.1 788433953af10f2a698f5c07611dddce2e08c7a0\n", "0.13.1", "788433953af1"),
    ],
)
def test_parse_version(text, version, revision):
    parsed = bx.parse_version(text)
    assert parsed["version"] == version
    assert parsed["revision"].startswith(revision)


def test_parse_version_rejects_other_output():
    with pytest.raises(bx.BuildxError, match="unexpected"):
        bx.parse_version("docker: 'buildx' is not a docker command.\n")


def test_parse_inspect_docker_driver_classic_engine():
    builder = bx.parse_inspect(fixture("inspect-docker-classic.txt"))
    assert (builder["name"], builder["driver"]) == ("fleet-classic", "docker")
    [node] = builder["nodes"]
    assert (node["name"], node["endpoint"], node["status"]) == ("fleet-classic", "fleet-classic", "running")
    assert node["buildkit_version"] == "v0.8+unknown"
    assert node["platforms"][:2] == ["linux/amd64", "linux/arm64"]
    assert "linux/arm/v7" in node["platforms"]
    assert node["fixed_platforms"] == []


def test_parse_inspect_skips_the_label_block_of_the_containerd_engine():
    builder = bx.parse_inspect(fixture("inspect-docker-containerd.txt"))
    [node] = builder["nodes"]
    assert node["status"] == "running"
    assert node["buildkit_version"] == "v0.0.0+unknown"
    # platforms the collection does not know (big-endian ppc64, mips64) are kept as printed
    assert {"linux/amd64/v2", "linux/ppc64", "linux/mips64", "linux/loong64"} <= set(node["platforms"])
    assert len(node["platforms"]) == 12


def test_parse_inspect_multi_node_docker_container():
    builder = bx.parse_inspect(fixture("inspect-docker-container-multi.txt"))
    assert builder["driver"] == "docker-container"
    assert builder["last_activity"].startswith("2026-")
    first, pi5 = builder["nodes"]
    assert first["driver_opts"] == {"image": "127.0.0.1:5000/moby/buildkit:buildx-stable-1", "network": "host"}
    assert first["buildkitd_flags"] == ["--debug", "--allow-insecure-entitlement=network.host"]
    assert first["fixed_platforms"] == ["linux/amd64", "linux/386"]
    assert (pi5["name"], pi5["endpoint"], pi5["status"]) == ("pi5", "fleet-c2", "inactive")
    assert pi5["platforms"] == pi5["fixed_platforms"] == ["linux/arm64", "linux/arm/v7"]


def test_parse_inspect_remote_inactive():
    builder = bx.parse_inspect(fixture("inspect-remote-inactive.txt"))
    assert [(n["name"], n["endpoint"], n["status"], n["platforms"]) for n in builder["nodes"]] == [
        ("pi5", "tcp://127.0.0.1:1", "inactive", ["linux/arm64"]),
        ("pi3", "tcp://127.0.0.1:2", "inactive", ["linux/arm/v7"]),
    ]


def test_parse_inspect_rejects_an_error_text():
    with pytest.raises(bx.BuildxError):
        bx.parse_inspect(fixture("inspect-missing.stderr"))


def test_parse_ls_json_deduplicates_and_matches_inspect():
    builders = bx.parse_ls_json(fixture("ls.json"))
    assert [b["name"] for b in builders] == ["fleet-multi", "fleet-remote", "default", "fleet-c2", "fleet-classic"]
    by_name = {b["name"]: b for b in builders}
    multi = bx.parse_inspect(fixture("inspect-docker-container-multi.txt"))
    for from_ls, from_inspect in zip(by_name["fleet-multi"]["nodes"], multi["nodes"]):
        for key in ("name", "endpoint", "status", "platforms", "fixed_platforms", "driver_opts", "buildkitd_flags"):
            assert from_ls[key] == from_inspect[key], key
    assert by_name["fleet-classic"]["nodes"][0]["fixed_platforms"] == []  # running: reported, not fixed


def test_parse_ls_table():
    assert bx.parse_ls_table(fixture("ls-table.txt")) == [
        "fleet-multi",
        "fleet-remote",
        "default",
        "fleet-c2",
        "fleet-classic",
    ]


def test_parse_instance():
    stored = bx.parse_instance(json.loads(fixture("instance-docker-container-multi.json")))
    assert stored["driver"] == "docker-container"
    first, pi5 = stored["nodes"]
    assert first["platforms"] == ["linux/amd64", "linux/386"]
    assert pi5["platforms"] == ["linux/arm64", "linux/arm/v7"]
    assert bx.user_flags(first["buildkitd_flags"], "docker-container") == ["--debug"]
    assert bx.user_flags(first["buildkitd_flags"], "remote") == first["buildkitd_flags"]
    # buildx rewrote the TOML it was given
    assert first["buildkitd_config"].startswith("\n[registry]\n")
    remote = bx.parse_instance(json.loads(fixture("instance-remote.json")))
    assert [(n["name"], n["buildkitd_config"], n["driver_opts"]) for n in remote["nodes"]] == [
        ("pi5", None, {}),
        ("pi3", None, {}),
    ]


GIVEN_CONFIG = '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n'


def test_same_config_compares_meaning():
    stored = bx.parse_instance(json.loads(fixture("instance-docker-container-multi.json")))["nodes"][0]
    assert bx.same_config(GIVEN_CONFIG, stored["buildkitd_config"])
    assert not bx.same_config(GIVEN_CONFIG.replace("insecure = true", "insecure = false"), stored["buildkitd_config"])
    assert not bx.same_config(None, stored["buildkitd_config"])
    assert bx.same_config(None, None)


def test_same_config_without_a_toml_parser_compares_text(monkeypatch):
    monkeypatch.setattr(bx, "_toml", None)
    assert bx.same_config("# mirrors\n[a]\n  b = 1\n\n", "[a]\nb = 1")
    assert not bx.same_config("[a]\nb = 1", "[a]\nb = 2")


def test_build_create_argv_puts_user_values_after_double_dash():
    argv = bx.build_create_argv(
        "fleet",
        "ssh://builder@pi5",
        node="pi5",
        driver="docker-container",
        driver_opts={"network": "host", "image": "r/buildkit:1"},
        platforms=["linux/arm64"],
        buildkitd_flags=["--debug", "--allow-insecure-entitlement", "security.insecure"],
        buildkitd_config_path="/run/fleet/buildkitd.toml",
        append=True,
    )
    assert argv == [
        "buildx",
        "create",
        "--name",
        "fleet",
        "--append",
        "--node",
        "pi5",
        "--driver",
        "docker-container",
        "--driver-opt",
        "image=r/buildkit:1",
        "--driver-opt",
        "network=host",
        "--platform",
        "linux/arm64",
        "--buildkitd-flags",
        "--debug --allow-insecure-entitlement security.insecure",
        "--buildkitd-config",
        "/run/fleet/buildkitd.toml",
        "--",
        "ssh://builder@pi5",
    ]
    assert bx.build_create_argv("b") == ["buildx", "create", "--name", "b"]


def test_bootstrap_error_names_the_image_and_the_option():
    stderr = fixture("bootstrap-error.stderr")
    assert bx.last_error(stderr).startswith("Error response from daemon: failed to resolve reference")
    hint = bx.bootstrap_hint("docker-container", {"image": "127.0.0.1:5000/moby/buildkit:buildx-stable-1"}, stderr)
    assert "the BuildKit image 127.0.0.1:5000/moby/buildkit:buildx-stable-1 could not be pulled" in hint
    assert "driver_opts.image" in hint
    assert bx.DEFAULT_BUILDKIT_IMAGE in bx.bootstrap_hint("docker-container", {}, stderr)
    assert "reachable" in bx.bootstrap_hint("remote", {}, "connection refused")


def test_a_builder_that_never_booted_is_named_with_why_and_what_to_do():
    """Issue 26: `buildx create --name` makes a node that reports no platforms until it boots."""
    builder = bx.parse_inspect(fixture("inspect-never-booted.txt"))
    [node] = builder["nodes"]
    assert (node["status"], node["platforms"]) == ("inactive", [])
    assert bx.not_running(builder) == [node]
    msg = bx.boot_failure(builder, fixture("bootstrap-hub-unreachable.stderr"))
    assert msg.startswith("the builder fleet-tutorial is inactive (never booted) and could not boot: Error response")
    assert "lookup registry-1.docker.io" in msg
    assert "the BuildKit image moby/buildkit:buildx-stable-1 could not be pulled" in msg
    assert "driver_opts.image" in msg and "docker buildx inspect --bootstrap fleet-tutorial" in msg


def test_running_nodes_and_the_docker_driver_need_no_boot():
    assert bx.not_running(bx.parse_inspect(fixture("inspect-docker-classic.txt"))) == []
    multi = bx.parse_inspect(fixture("inspect-docker-container-multi.txt"))  # both nodes inactive
    assert bx.not_running(multi) == multi["nodes"]
    assert "(images of the nodes:" not in bx.boot_failure(multi, "")  # both name the same image
    remote = bx.parse_inspect(fixture("inspect-remote-inactive.txt"))
    assert "reachable" in bx.boot_failure(remote, "connection refused")


# runner --------------------------------------------------------------------------------------------


class FakeModule:
    """Records run_command calls and answers from a table of argv tail -> (rc, out, err)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def get_bin_path(self, name):
        return f"/usr/bin/{name}"

    def run_command(self, argv, environ_update=None, data=None):
        self.calls.append((argv, environ_update))
        return self.answers[tuple(argv[1:])]


def test_runner_passes_connection_settings_as_environment():
    module = FakeModule({("buildx", "version"): (0, fixture("version-debian.txt"), "")})
    cli = bx.DockerCLI(
        module, docker_host="unix:///run/x.sock", docker_context="lab", docker_config="/srv/ci/docker-config"
    )
    assert cli.version()["version"] == "0.13.1+ds1"
    argv, env = module.calls[0]
    assert argv == ["/usr/bin/docker", "buildx", "version"]
    assert env == {
        "DOCKER_HOST": "unix:///run/x.sock",
        "DOCKER_CONTEXT": "lab",
        "DOCKER_CONFIG": "/srv/ci/docker-config",
    }
    assert cli.config_dir == "/srv/ci/docker-config"


def test_runner_inspect_missing_builder_is_none():
    module = FakeModule({("buildx", "inspect", "--", "nosuch"): (1, "", fixture("inspect-missing.stderr"))})
    assert bx.DockerCLI(module).inspect("nosuch") is None


def test_runner_without_plugin_says_how_to_install_it():
    module = FakeModule({("buildx", "version"): (1, "", "docker: 'buildx' is not a docker command.")})
    with pytest.raises(bx.BuildxError, match=r"fleet\.multiarch\.buildx_plugin"):
        bx.DockerCLI(module).version()


def test_runner_list_falls_back_to_table_and_inspect():
    module = FakeModule(
        {
            ("buildx", "ls", "--format", "json"): (1, "", "unknown flag: --format"),
            ("buildx", "ls"): (
                0,
                "NAME/NODE DRIVER/ENDPOINT STATUS\nfleet-remote remote\n  pi5 tcp://x inactive\n",
                "",
            ),
            ("buildx", "inspect", "--", "fleet-remote"): (0, fixture("inspect-remote-inactive.txt"), ""),
        }
    )
    [builder] = bx.DockerCLI(module).list_builders()
    assert [n["name"] for n in builder["nodes"]] == ["pi5", "pi3"]


def test_runner_reads_stored_builder(tmp_path):
    instances = tmp_path / "buildx" / "instances"
    instances.mkdir(parents=True)
    (instances / "fleet-remote").write_text(fixture("instance-remote.json"))
    cli = bx.DockerCLI(FakeModule({}), docker_config=str(tmp_path))
    assert cli.stored_builder("fleet-remote")["driver"] == "remote"
    assert cli.stored_builder("absent") is None


def test_runner_failure_carries_command_and_last_error():
    module = FakeModule({("buildx", "rm", "--", "x"): (1, "", "some progress\nERROR: failed to remove x\n")})
    with pytest.raises(bx.BuildxError) as err:
        bx.DockerCLI(module).remove("x")
    assert str(err.value) == "docker buildx rm x failed: failed to remove x"
    assert err.value.to_result()["cmd"] == ["/usr/bin/docker", "buildx", "rm", "--", "x"]


def test_select_builders_all_marks_current():
    builders, missing = bx.select_builders(bx.parse_ls_json(fixture("ls.json")), None, "fleet-remote")
    assert len(builders) == 5
    assert [b["name"] for b in builders if b["current"]] == ["fleet-remote"]
    assert missing == []


def test_select_builders_by_name_reports_missing():
    builders, missing = bx.select_builders(bx.parse_ls_json(fixture("ls.json")), ["fleet-c2", "nosuch"], "default")
    assert [(b["name"], b["driver"], b["current"]) for b in builders] == [("fleet-c2", "docker", False)]
    assert missing == ["nosuch"]
