"""Integration: fleet.multiarch.device_facts run through ansible on this x86_64 build host."""

from __future__ import annotations

import platform

import pytest

from .helpers import run_module


@pytest.fixture(scope="module")
def device(testenv) -> dict:
    result = run_module("fleet.multiarch.device_facts", {})
    assert not result.get("failed"), result
    return result


def test_build_host_is_linux_amd64(device):
    if platform.machine() != "x86_64":
        pytest.skip(f"this integration test expects the x86_64 build host, not {platform.machine()}")
    facts = device["ansible_facts"]["fleet_device"]
    assert device["changed"] is False
    assert facts["machine"] == "x86_64"
    assert facts["kernel_bits"] == 64
    assert facts["userland_arch"] == "amd64"
    assert facts["userland_bits"] == 64
    assert facts["elf"]["machine"] == "x86-64"
    assert facts["cpu"]["architecture_level"] is None
    assert facts["cpu"]["cores"] >= 1
    assert facts["memory_mb"] > 0
    assert facts["board"]["model"] == ""
    assert facts["platform"] == "linux/amd64"
    assert facts["platform_reason"] == "64-bit kernel (x86_64) with a 64-bit amd64 userland: linux/amd64"


def test_engine_is_the_test_environment_docker(device, testenv):
    engine = device["ansible_facts"]["fleet_device"]["engine"]
    assert engine["name"] == "docker"
    assert engine["reachable"] is True
    assert engine["version"] == testenv["engine_version"]
    assert engine["arch"] == "amd64"
    assert engine["os"] == "linux"


def test_check_mode_reports_the_same(device):
    checked = run_module("fleet.multiarch.device_facts", {}, check_mode=True)
    assert checked["changed"] is False
    assert checked["ansible_facts"]["fleet_device"] == device["ansible_facts"]["fleet_device"]
