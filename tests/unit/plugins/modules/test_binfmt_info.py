"""Unit tests for the binfmt_info module on a captured binfmt_misc directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import parse_platform
from ansible_collections.fleet.multiarch.plugins.modules import binfmt_info

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binfmt"


def run_main(capsys) -> dict:
    with patch_module_args({}), pytest.raises(SystemExit):
        binfmt_info.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def amd64_host(monkeypatch):
    monkeypatch.setattr(binfmt_info, "host_platform", lambda: parse_platform("linux/amd64"))


def test_reports_captured_entries(tmp_path, monkeypatch, amd64_host, capsys):
    for path in (FIXTURES / "proc").iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "register").write_text("")
    monkeypatch.setattr(bf, "PROC_ROOT", str(tmp_path))
    result = run_main(capsys)
    assert result["changed"] is False
    assert result["mounted"] is True
    assert result["status_enabled"] is True
    assert result["host_platform"] == "linux/amd64"
    names = [e["name"] for e in result["entries"]]
    assert names == sorted(names)
    assert "jar" in names
    assert "fleet-test-ext" in names
    aarch64 = next(e for e in result["entries"] if e["name"] == "qemu-aarch64")
    assert aarch64 == {
        "name": "qemu-aarch64",
        "enabled": True,
        "interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "flags": "PF",
        "type": "magic",
        "offset": 0,
        "magic": "7f454c460201010000000000000000000200b700",
        "mask": "ffffffffffffff00fffffffffffffffffeffffff",
        "extension": "",
        "platform": "linux/arm64",
    }
    assert next(e for e in result["entries"] if e["name"] == "jar")["platform"] == ""
    assert result["emulated"] == [
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
        "linux/mips64le",
        "linux/loong64",
    ]
    assert result["supported"] == ["linux/amd64", "linux/386", *result["emulated"]]


def test_unmounted(tmp_path, monkeypatch, amd64_host, capsys):
    monkeypatch.setattr(bf, "PROC_ROOT", str(tmp_path))
    result = run_main(capsys)
    assert result["mounted"] is False
    assert result["entries"] == []
    assert result["emulated"] == []
    assert result["supported"] == ["linux/amd64", "linux/386"]


def test_non_linux_fails(monkeypatch, capsys):
    monkeypatch.setattr(binfmt_info.pyplatform, "system", lambda: "FreeBSD")
    result = run_main(capsys)
    assert result["failed"] is True
    assert "Linux only" in result["msg"]
