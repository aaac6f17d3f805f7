"""Loads scripts/role_vars.py (a script, not a package) once for the tests of this folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_role_vars() -> ModuleType:
    if "role_vars" in sys.modules:
        return sys.modules["role_vars"]
    spec = importlib.util.spec_from_file_location("role_vars", ROOT / "scripts" / "role_vars.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up by name.
    sys.modules["role_vars"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def role_vars() -> ModuleType:
    return load_role_vars()
