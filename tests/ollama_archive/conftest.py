"""Fixtures: model stores written by the Ollama stand-in's store writer, in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standins.standin_helpers import make_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    make_store(models, "classroom-tiny:latest", "hf.co/acme/tiny-gguf:Q4_K_M")
    return models
