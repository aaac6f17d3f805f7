"""Shared helpers: recorded nvidia-smi transcripts and a ready-made set of inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = HERE / "fixtures"
ROLE = ROOT / "roles" / "gpu_preflight"
REPLAY = ROOT / "molecule" / "gpu_preflight" / "replay"


def transcript(path: Path) -> str:
    """Command output of a transcript: drops the ``# command:`` line and the ``exit=`` line."""
    lines = path.read_text().splitlines(keepends=True)
    if lines and lines[0].startswith("# command:"):
        lines = lines[1:]
    if lines and lines[-1].startswith("exit="):
        lines = lines[:-1]
    return "".join(lines)


def fixture_text(name: str) -> str:
    return transcript(FIXTURES / name)


@pytest.fixture(scope="session")
def known_models() -> dict:
    return yaml.safe_load((ROLE / "vars" / "known_models.yml").read_text())["__gpu_preflight_known_models"]


@pytest.fixture(scope="session")
def driver_table() -> dict:
    return yaml.safe_load((ROLE / "vars" / "driver_minimums.yml").read_text())["__gpu_preflight_driver_table"]


@pytest.fixture(scope="session")
def role_defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
