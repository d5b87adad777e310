"""Shared pytest set-up: the repository root on sys.path as the collection's import root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Unit tests import the collection as ``ansible_collections.fleet.multiarch``: the venv links it there
# (scripts/venv.sh). Fail early with a clear message when it does not.
try:
    import ansible_collections.fleet.multiarch  # noqa: F401
except ImportError as exc:  # pragma: no cover - set-up error
    raise RuntimeError(
        f"fleet.multiarch is not importable from {sys.executable}: run scripts/venv.sh (make test does)"
    ) from exc

os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
