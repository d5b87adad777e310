"""Integration fixtures: the real test environment brought up by scripts/testenv.sh.

Nothing here starts a fake. When the environment is not up, every integration test errors with the
command that brings it up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .helpers import run

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("FLEET_TESTENV_STATE", "/var/lib/fleet-multiarch-testenv"))


@pytest.fixture(scope="session")
def testenv() -> dict:
    """What scripts/testenv.sh up recorded: registries, credentials, buildx, base images."""
    facts = STATE / "testenv.json"
    if not facts.is_file():
        pytest.fail(f"{facts} is missing: run `scripts/testenv.sh up` (make test does) first", pytrace=False)
    env = json.loads(facts.read_text())
    ping = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, timeout=30)
    if ping.returncode != 0:
        pytest.fail(
            f"the Docker engine does not answer: {ping.stderr.strip()}; run `scripts/testenv.sh up`", pytrace=False
        )
    env["engine_version"] = ping.stdout.strip()
    return env
