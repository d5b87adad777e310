"""buildx_plugin against the real plugin binary served over HTTP from 127.0.0.1.

The binary is the one scripts/testenv.sh cached from Debian's docker-buildx package. Every install goes into
a temporary DOCKER_CONFIG/cli-plugins; the system plugin in /usr/local/lib/docker/cli-plugins is never touched.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from .helpers import run, run_module

ASSET = "buildx-v0.13.1.linux-amd64"


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the directory; /truncated/NAME sends the full Content-Length but only half the bytes."""

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.split("/", 2)[2]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def release(testenv, tmp_path_factory):
    """A local 'release': the real binary under its release asset name and a checksums.txt for it."""
    if os.uname().machine != "x86_64":
        pytest.skip("the cached Debian docker-buildx binary is amd64; this host is " + os.uname().machine)
    root = tmp_path_factory.mktemp("release")
    shutil.copy(testenv["buildx"]["path"], root / ASSET)
    digest = hashlib.sha256((root / ASSET).read_bytes()).hexdigest()
    assert digest == testenv["buildx"]["sha256"]
    (root / "checksums.txt").write_text(f"{digest} *{ASSET}\n{'0' * 64} *{ASSET}.sbom.json\n")
    (root / "wrong-checksums.txt").write_text(f"{'1' * 64} *{ASSET}\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield {"base": base, "sha256": digest, "root": root}
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def docker_config(tmp_path) -> Path:
    return tmp_path / "docker-config"


def client_plugin(docker_config: Path) -> dict:
    """What the docker CLI itself finds for `buildx` with this DOCKER_CONFIG."""
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    out = run(["docker", "info", "--format", "{{json .ClientInfo.Plugins}}"], env=env).stdout
    [plugin] = [p for p in json.loads(out) if p["Name"] == "buildx"]
    plugin["buildx_version"] = run(["docker", "buildx", "version"], env=env).stdout.split()[1]
    return plugin


def test_install_check_apply_idempotent_and_used_by_docker(release, docker_config):
    args = {
        "plugin_dir": str(docker_config / "cli-plugins"),
        "url": release["base"] + "/buildx-v{version}.linux-{arch}",
        "checksum_url": release["base"] + "/checksums.txt",
    }
    target = docker_config / "cli-plugins" / "docker-buildx"

    planned = run_module("fleet.multiarch.buildx_plugin", args, check_mode=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["sha256"] == release["sha256"]
    assert planned["diff"]["before"] == {}
    assert not target.exists()

    done = run_module("fleet.multiarch.buildx_plugin", args, diff=True)
    assert done["changed"] is True, done
    assert (done["path"], done["sha256"], done["version"]) == (str(target), release["sha256"], "0.13.1+ds1")
    assert done["url"] == f"{release['base']}/{ASSET}"
    assert oct(target.stat().st_mode & 0o777) == "0o755"

    plugin = client_plugin(docker_config)
    assert plugin["Path"] == str(target)
    assert plugin["buildx_version"] == done["version"]

    assert run_module("fleet.multiarch.buildx_plugin", args, check_mode=True)["changed"] is False
    again = run_module("fleet.multiarch.buildx_plugin", args)
    assert (again["changed"], again["version"]) == (False, "0.13.1+ds1")

    gone = run_module("fleet.multiarch.buildx_plugin", {"plugin_dir": args["plugin_dir"], "state": "absent"})
    assert gone["changed"] is True
    assert not target.exists()
    assert client_plugin(docker_config)["Path"] != str(target)  # docker falls back to the system plugin


def test_reinstall_over_an_existing_plugin(release, docker_config):
    plugins = docker_config / "cli-plugins"
    plugins.mkdir(parents=True)
    old = plugins / "docker-buildx"
    old.write_text("#!/bin/sh\necho 'github.com/docker/buildx v0.10.0 oldrevision'\n")
    old.chmod(0o700)
    args = {
        "plugin_dir": str(plugins),
        "url": release["base"] + f"/{ASSET}",
        "checksum": "sha256:" + release["sha256"],
    }
    planned = run_module("fleet.multiarch.buildx_plugin", args, check_mode=True, diff=True)
    assert planned["changed"] is True
    assert planned["diff"]["before"]["version"] == "0.10.0"
    assert "oldrevision" in old.read_text()

    done = run_module("fleet.multiarch.buildx_plugin", args, diff=True)
    assert (done["changed"], done["version"]) == (True, "0.13.1+ds1"), done
    assert done["diff"]["before"]["version"] == "0.10.0"
    assert hashlib.sha256(old.read_bytes()).hexdigest() == release["sha256"]
    assert oct(old.stat().st_mode & 0o777) == "0o755"
    assert client_plugin(docker_config)["Path"] == str(old)
    assert run_module("fleet.multiarch.buildx_plugin", args)["changed"] is False


@pytest.fixture
def installed(release, docker_config) -> Path:
    """A working plugin already installed, to prove failures leave it untouched."""
    args = {"plugin_dir": str(docker_config / "cli-plugins"), "src": str(release["root"] / ASSET)}
    assert run_module("fleet.multiarch.buildx_plugin", args)["changed"] is True
    return docker_config / "cli-plugins" / "docker-buildx"


def assert_untouched(path: Path, release):
    assert hashlib.sha256(path.read_bytes()).hexdigest() == release["sha256"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["docker-buildx"]  # no temporary file left


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ({"checksum": "sha256:" + "2" * 64}, "checksum mismatch"),
        ({"checksum_url": "/wrong-checksums.txt"}, "checksum mismatch"),
        ({"url": "/truncated/" + ASSET, "checksum": "sha256:" + "2" * 64}, "truncated"),
        ({"url": "/missing-asset", "skip_checksum": True}, "HTTP status 404"),
        ({"url": "/truncated/" + ASSET, "skip_checksum": True}, "truncated"),
    ],
)
def test_failed_download_leaves_the_plugin_untouched(release, installed, how, message):
    args = {"plugin_dir": str(installed.parent), "url": release["base"] + f"/{ASSET}"}
    for key, value in how.items():
        args[key] = release["base"] + value if key in ("url", "checksum_url") else value
    result = run_module("fleet.multiarch.buildx_plugin", args)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert_untouched(installed, release)


def test_unreachable_url(release, installed):
    port = free_port()  # nothing listens there
    args = {"plugin_dir": str(installed.parent), "url": f"http://127.0.0.1:{port}/{ASSET}", "skip_checksum": True}
    result = run_module("fleet.multiarch.buildx_plugin", args)
    assert result.get("failed") is True, result
    assert f"cannot download http://127.0.0.1:{port}/{ASSET}" in result["msg"]
    assert "Connection refused" in result["msg"]
    assert_untouched(installed, release)


def test_custom_url_without_checksum_is_refused(release, installed):
    result = run_module("fleet.multiarch.buildx_plugin", {"plugin_dir": str(installed.parent), "url": release["base"]})
    assert result.get("failed") is True
    assert "refusing to install" in result["msg"] and "skip_checksum" in result["msg"]
    assert_untouched(installed, release)


def test_checksums_file_without_the_asset(release, installed):
    args = {
        "plugin_dir": str(installed.parent),
        "url": release["base"] + "/renamed-asset",
        "checksum_url": release["base"] + "/checksums.txt",
    }
    result = run_module("fleet.multiarch.buildx_plugin", args)
    assert result.get("failed") is True
    assert "has no checksum for renamed-asset" in result["msg"]
    assert_untouched(installed, release)


def test_skip_checksum_installs_and_is_idempotent_by_content(release, docker_config):
    args = {
        "plugin_dir": str(docker_config / "cli-plugins"),
        "url": release["base"] + f"/{ASSET}",
        "skip_checksum": True,
    }
    first = run_module("fleet.multiarch.buildx_plugin", args)
    assert (first["changed"], first["sha256"]) == (True, release["sha256"]), first
    assert run_module("fleet.multiarch.buildx_plugin", args, check_mode=True)["changed"] is False
    assert run_module("fleet.multiarch.buildx_plugin", args)["changed"] is False


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("rwxr-xr-x", "invalid mode 'rwxr-xr-x'"),
        ("0644", "mode 0644 does not let the owner execute"),
        (0o10000, "at most 07777"),
    ],
)
def test_bad_mode_is_refused_before_anything_is_touched(release, installed, docker_config, mode, message):
    """Today's fault: an invalid mode failed only after the plugin had been moved into place, not executable."""
    args = {"url": release["base"] + f"/{ASSET}", "checksum_url": release["base"] + "/checksums.txt", "mode": mode}
    result = run_module("fleet.multiarch.buildx_plugin", dict(args, plugin_dir=str(installed.parent)))
    assert result.get("failed") is True and result.get("changed", False) is False, result
    assert message in result["msg"] and "nothing was installed" in result["msg"]
    assert_untouched(installed, release)
    assert oct(installed.stat().st_mode & 0o777) == "0o755"
    fresh = docker_config.parent / "fresh" / "cli-plugins"
    result = run_module("fleet.multiarch.buildx_plugin", dict(args, plugin_dir=str(fresh)))
    assert result.get("failed") is True and result.get("changed", False) is False, result
    assert not fresh.exists(), "a refused task created the plugin directory"


def test_missing_src_is_named_before_anything_is_touched(release, installed, tmp_path):
    """Issue 26: a src that does not exist ended in 'unexpected error: [Errno 2] ...'."""
    result = run_module(
        "fleet.multiarch.buildx_plugin", {"plugin_dir": str(installed.parent), "src": str(tmp_path / "nope")}
    )
    assert result.get("failed") is True and result.get("changed", False) is False, result
    assert f"src {tmp_path / 'nope'} does not exist" in result["msg"] and "unexpected" not in result["msg"]
    assert_untouched(installed, release)
