"""Fixtures: a model store written by make_store.py and Ollama stand-ins serving it on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.standins.standin_helpers import Running, make_store, start


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def factory(models: Path, **env: str) -> Running:
        running = start(tmp_path, models, **env)
        started.append(running)
        return running

    yield factory
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(5)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    make_store(models, "classroom-tiny:latest", "hf.co/acme/tiny-gguf:Q4_K_M")
    return models


@pytest.fixture
def server(server_factory, store: Path) -> Running:
    return server_factory(store)
