"""Shared pytest set-up for every test layer."""

from __future__ import annotations

import importlib.util
import os
import sys

# Tests import the collection as ``ansible_collections.fleet.multiarch``: the venv links it there
# (scripts/venv.sh). Fail early with a clear message when it does not.
if importlib.util.find_spec("ansible_collections.fleet.multiarch") is None:  # pragma: no cover - set-up error
    raise RuntimeError(f"fleet.multiarch is not importable from {sys.executable}: run scripts/venv.sh (make test does)")

os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
