"""Fixtures of the preflight tests: the role's data tables and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ROLE = ROOT / "roles" / "gpu_preflight"


@pytest.fixture(scope="session")
def known_models() -> dict:
    return yaml.safe_load((ROLE / "vars" / "known_models.yml").read_text())["__gpu_preflight_known_models"]


@pytest.fixture(scope="session")
def driver_table() -> dict:
    return yaml.safe_load((ROLE / "vars" / "driver_minimums.yml").read_text())["__gpu_preflight_driver_table"]


@pytest.fixture(scope="session")
def role_defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
