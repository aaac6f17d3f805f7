"""Shared by the validation kit's tests: the project's nvidia-smi stand-in replaying the 2x H200 host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.validation.standin import H200X2, STANDIN


@pytest.fixture
def smi_on_path(tmp_path, monkeypatch) -> Path:
    """`nvidia-smi` on PATH answers from the 2x H200 transcripts (idle host)."""
    folder = tmp_path / "smi-bin"
    folder.mkdir()
    shim = folder / "nvidia-smi"
    shim.write_text(f"#!/bin/sh\nNVIDIA_SMI_REPLAY_DIR={H200X2} exec {sys.executable} {STANDIN} \"$@\"\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return folder
