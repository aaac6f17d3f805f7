"""The nvidia-smi transcripts of tests/fixtures/nvidia-smi, read with the stand-in's own parser.

One copy of each transcript serves the unit tests, the molecule replays and the validation kit's
dry run; each names its source (recorded on a real host, or synthetic) in its second line.
"""

from __future__ import annotations

from pathlib import Path

from tests.standins.nvidia_smi import load

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = ROOT / "tests" / "fixtures" / "nvidia-smi"


def read(path: Path) -> tuple[str, str, int]:
    """(command line, output, exit code) of a transcript file; fails the test on a malformed one."""
    entry = load(path)
    assert entry is not None, f"{path} is not a transcript (# command:, # source:, output, exit=N)"
    return entry


def output(name: str) -> str:
    """The command output of TRANSCRIPTS/<name>, e.g. ``h200x2/topo.txt``."""
    return read(TRANSCRIPTS / name)[1]


def answers(folder: Path) -> dict[str, tuple[int, str]]:
    """Command line -> (exit code, output) for every transcript directly in ``folder``."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(folder.glob("*.txt")):
        command, out, code = read(path)
        found[command] = (code, out)
    return found
