"""Unit tests for _buildx_plugin: release URLs and checksums, the plugin file's mode, the installer's source rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx_plugin as bp
from ansible_collections.fleet.multiarch.plugins.modules import buildx_plugin as mod

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "buildx"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# release -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm-v7"),
        ("armv6l", "arm-v6"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
    ],
)
def test_release_arch(machine, arch):
    assert bp.release_arch(machine) == arch


@pytest.mark.parametrize(("machine", "hint"), [("i686", "no linux release binary"), ("sparc64", "unknown")])
def test_release_arch_without_binary(machine, hint):
    with pytest.raises(bx.BuildxError, match=hint) as err:
        bp.release_arch(machine)
    assert "url" in str(err.value)


@pytest.mark.parametrize("version", ["0.13.1", "v0.13.1"])
def test_default_release_url(version):
    assert (
        bp.render_url(bp.RELEASE_URL, version, "arm-v7")
        == "https://github.com/docker/buildx/releases/download/v0.13.1/buildx-v0.13.1.linux-arm-v7"
    )
    assert (
        bp.render_url(bp.RELEASE_CHECKSUMS_URL, version, "amd64")
        == "https://github.com/docker/buildx/releases/download/v0.13.1/checksums.txt"
    )


def test_render_url_rejects_unknown_placeholders():
    with pytest.raises(bx.BuildxError, match=r"only \{version\} and \{arch\}"):
        bp.render_url("https://mirror/{release}/buildx", "0.13.1", "amd64")


def test_checksums_file_gives_the_asset_of_the_default_url():
    checksums = bp.parse_checksums(fixture("checksums-format-sample.txt"))
    url = bp.render_url(bp.RELEASE_URL, "0.13.1", bp.release_arch("aarch64"))
    assert checksums[url.rsplit("/", 1)[1]] == "3ba35a5d38361a64b62aeb9d20acc835ff6862a711cb438e610026b29c0ac489"
    assert len(checksums) == 4


def test_checksums_text_mode_and_paths():
    text = f"{'A' * 64}  dist/buildx-v1.linux-amd64\nnot a line\n{'b' * 64} *other\n"
    assert bp.parse_checksums(text) == {"buildx-v1.linux-amd64": "a" * 64, "other": "b" * 64}


@pytest.mark.parametrize("value", ["sha256:" + "AB" * 32, " sha256:" + "ab" * 32 + " "])
def test_parse_checksum(value):
    assert bp.parse_checksum(value) == "ab" * 32


@pytest.mark.parametrize("value", ["ab" * 32, "md5:" + "ab" * 16, "sha256:" + "ab" * 31, "sha256:" + "zz" * 32])
def test_parse_checksum_rejects(value):
    with pytest.raises(bx.BuildxError, match="sha256:<64 hex digits>"):
        bp.parse_checksum(value)


# the plugin file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("0755", "0755"),
        ("755", "0755"),
        ("0o750", "0750"),
        (0o755, "0755"),
        ("0700", "0700"),
        ("u=rwx,go=rx", "u=rwx,go=rx"),
        ("a+x", "a+x"),
    ],
)
def test_parse_mode_accepts(value, want):
    assert bp.parse_mode(value) == want


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("rwxr-xr-x", "invalid mode 'rwxr-xr-x'"),
        ("0o9z", "invalid mode"),
        ("", "invalid mode"),
        ("0644", "does not let the owner execute"),
        (0o644, "does not let the owner execute"),
        ("77777", "invalid mode"),
        (0o10000, "at most 07777"),
        ("u=rwx,g=q", "invalid mode"),
    ],
)
def test_parse_mode_refuses(value, words):
    with pytest.raises(bx.BuildxError, match=words):
        bp.parse_mode(value)


# the installer --------------------------------------------------------------------------------


class Params:
    """An AnsibleModule stand-in for PluginInstaller.source()."""

    def __init__(self, **kwargs):
        self.params = {k: spec.get("default") for k, spec in mod.ARGUMENT_SPEC.items()}
        self.params.update(kwargs)


@pytest.fixture
def amd64(monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6", "1", "x86_64")))


def test_default_source_is_the_release_with_its_checksums(amd64, tmp_path):
    installer = bp.PluginInstaller(Params(plugin_dir=str(tmp_path)))
    assert installer.source() == (
        "https://github.com/docker/buildx/releases/download/v0.13.1/buildx-v0.13.1.linux-amd64",
        "https://github.com/docker/buildx/releases/download/v0.13.1/checksums.txt",
        None,
    )


def test_custom_url_without_checksum_is_refused(amd64, tmp_path):
    installer = bp.PluginInstaller(Params(plugin_dir=str(tmp_path), url="https://mirror/buildx-{arch}"))
    with pytest.raises(bx.BuildxError, match="refusing to install from https://mirror/buildx-amd64 without a checksum"):
        installer.source()
    opted_out = bp.PluginInstaller(Params(plugin_dir=str(tmp_path), url="https://mirror/x", skip_checksum=True))
    assert opted_out.source() == ("https://mirror/x", None, None)


def test_custom_url_with_checksum_url_template(amd64, tmp_path):
    installer = bp.PluginInstaller(
        Params(
            plugin_dir=str(tmp_path),
            version="v0.14.0",
            url="https://m/{version}/b",
            checksum_url="https://m/{version}/sums",
        )
    )
    assert installer.source() == ("https://m/0.14.0/b", "https://m/0.14.0/sums", None)


def test_scope_directories(tmp_path):
    assert bp.plugin_dir_for("system", None, None) == ("/usr/local/lib/docker/cli-plugins", None)
    assert bp.plugin_dir_for("user", "root", None)[0] == os.path.join(
        os.path.expanduser("~root"), ".docker", "cli-plugins"
    )
    assert bp.plugin_dir_for("user", None, str(tmp_path)) == (str(tmp_path), None)
    with pytest.raises(bx.BuildxError, match="not a user"):
        bp.plugin_dir_for("user", "no-such-user-fleet", None)
