"""Unit tests for _binfmt_manager: which QEMU targets a request means on a host."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt_manager as bm
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import parse_platform


@pytest.mark.parametrize(
    ("host", "specs", "targets", "skipped"),
    [
        ("linux/amd64", ["all"], ["aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips64el", "loongarch64"], 2),
        (
            "linux/arm64",
            ["all"],
            ["arm", "riscv64", "ppc64le", "s390x", "i386", "mips64el", "loongarch64", "x86_64"],
            1,
        ),
        ("linux/amd64", ["aarch64", "linux/arm64/v8", "arm64"], ["aarch64"], 0),
        ("linux/amd64", ["linux/arm/v6", "armhf", "arm"], ["arm"], 0),
        ("linux/arm64", ["amd64", "386"], ["i386", "x86_64"], 0),
    ],
)
def test_resolve_targets(host, specs, targets, skipped):
    got, skip, _every = bm.resolve_targets(specs, parse_platform(host))
    assert got == targets
    assert len(skip) == skipped
