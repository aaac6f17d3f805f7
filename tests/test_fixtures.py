"""One copy of each fixture, each transcript marked as recorded or synthetic."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.nvidia_smi import ROOT, TRANSCRIPTS, read

FIXTURE_ROOTS = [ROOT / "tests", ROOT / "molecule"]


def fixture_files() -> list[Path]:
    found: set[Path] = set()
    for base in FIXTURE_ROOTS:
        for folder in base.rglob("fixtures"):
            if folder.is_dir() and ".molecule" not in folder.parts:
                found.update(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(found)


def test_no_two_fixture_files_have_the_same_content():
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in fixture_files():
        by_digest[hashlib.sha256(path.read_bytes()).hexdigest()].append(str(path.relative_to(ROOT)))
    copies = [paths for paths in by_digest.values() if len(paths) > 1]
    assert not copies, f"the same fixture is committed more than once (keep one, point the users at it): {copies}"


@pytest.mark.parametrize("path", sorted(TRANSCRIPTS.rglob("*.txt")), ids=lambda p: str(p.relative_to(TRANSCRIPTS)))
def test_every_transcript_names_its_source(path: Path):
    command, _, _ = read(path)
    source = path.read_text().splitlines()[1].removeprefix("# source: ")
    assert command.startswith("nvidia-smi")
    assert source.split(" ", 1)[0].rstrip(":,") in {"recorded", "synthetic"}, f"{path}: {source}"


def test_each_replay_folder_answers_each_command_once():
    for folder in [p for p in TRANSCRIPTS.rglob("*") if p.is_dir()] + [TRANSCRIPTS]:
        commands = [read(p)[0] for p in folder.glob("*.txt")]
        assert len(commands) == len(set(commands)), f"{folder} answers a command twice: the stand-in would pick one"
