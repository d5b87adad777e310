"""Unit tests for the device_facts module's main() on captured board texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _device as dev
from ansible_collections.fleet.multiarch.plugins.modules import device_facts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "devices"


def run_main(capsys, args=None) -> dict:
    with patch_module_args(args or {}), pytest.raises(SystemExit):
        device_facts.main()
    return json.loads(capsys.readouterr().out)


def use_board(monkeypatch, board: str, elf: str = "") -> None:
    """Point the module's reader at a fixture folder: files instead of /proc, texts instead of commands."""
    root = FIXTURES / board

    def text(name):
        path = root / name
        return path.read_text() if path.is_file() else ""

    class BoardReader(dev.DeviceReader):
        def cpuinfo(self):
            return text("cpuinfo")

        def meminfo(self):
            return text("meminfo")

        def device_tree_model(self):
            return text("model")

        def machine(self):
            return text("uname_m")

        def elf_header(self):
            hex_text = (FIXTURES / "elf" / f"{elf}.hex").read_text() if elf else text("elf_sh.hex")
            return ("/usr/bin/dash", bytes.fromhex(hex_text.strip())) if hex_text else ("", b"")

        def dpkg_arch(self):
            return text("dpkg_arch")

        def docker_version(self):
            return text("docker_version.json") if (root / "docker_version.json").is_file() else None

    monkeypatch.setattr(device_facts, "DeviceReader", BoardReader)


@pytest.mark.parametrize(
    ("board", "elf", "platform"),
    [
        ("pi-zero-w-raspbian", "bookworm-armhf-dash", "linux/arm/v6"),
        ("pi-1-b-plus-raspbian", "", "linux/arm/v6"),
        ("pi-2-b-raspbian", "bookworm-armhf-dash", "linux/arm/v7"),
        ("pi-3-b-raspbian", "", "linux/arm/v7"),
        ("pi-3-b-arm64", "bookworm-arm64-dash", "linux/arm64"),
        ("pi-4-b-raspbian", "", "linux/arm/v7"),
        ("pi-4-b-kernel64-armhf", "bookworm-armhf-dash", "linux/arm/v7"),
        ("pi-5", "bookworm-arm64-dash", "linux/arm64"),
        ("rock-5b", "", "linux/arm64"),
        ("x86_64-build-host", "", "linux/amd64"),
    ],
)
def test_main_reports_fleet_device(monkeypatch, capsys, board, elf, platform):
    use_board(monkeypatch, board, elf)
    result = run_main(capsys)
    assert result["changed"] is False
    facts = result["ansible_facts"]["fleet_device"]
    assert facts["platform"] == platform
    assert facts["platform_reason"].endswith(platform)
    assert set(facts) == {
        "machine",
        "kernel_bits",
        "userland_arch",
        "userland_bits",
        "elf",
        "cpu",
        "board",
        "memory_mb",
        "engine",
        "platform",
        "platform_reason",
        "engine_mismatch",
    }


def test_main_in_check_mode(monkeypatch, capsys):
    use_board(monkeypatch, "pi-4-b-kernel64-armhf", "bookworm-armhf-dash")
    result = run_main(capsys, {"_ansible_check_mode": True})
    assert result["changed"] is False
    assert result["ansible_facts"]["fleet_device"]["platform"] == "linux/arm/v7"


def test_main_rejects_options(capsys):
    with patch_module_args({"platform": "linux/arm64"}), pytest.raises(SystemExit):
        device_facts.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert "platform" in result["msg"]


def test_main_fails_clearly_on_an_unknown_architecture(monkeypatch, capsys):
    use_board(monkeypatch, "rock-5b")
    monkeypatch.setattr(device_facts.DeviceReader, "machine", lambda self: "sparc64")
    result = run_main(capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("cannot decide this device's OCI platform: unknown architecture 'sparc64'")


def test_main_reports_unexpected_errors(monkeypatch, capsys):
    use_board(monkeypatch, "pi-5")

    def broken(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(device_facts.DeviceReader, "cpuinfo", broken)
    result = run_main(capsys)
    assert result["failed"] is True
    assert result["msg"] == "reading the device failed: disk on fire"


def test_main_non_linux_fails(monkeypatch, capsys):
    monkeypatch.setattr(device_facts.pyplatform, "system", lambda: "Darwin")
    result = run_main(capsys)
    assert result["failed"] is True
    assert "Linux only" in result["msg"]


def test_main_on_this_machine(capsys):
    """The real reader on the x86_64 build host: no fixture, real /proc, real dpkg and docker."""
    facts = run_main(capsys)["ansible_facts"]["fleet_device"]
    assert facts["machine"] == "x86_64"
    assert facts["platform"] == "linux/amd64"
    assert facts["elf"]["bits"] == 64
