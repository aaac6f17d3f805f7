"""Where the project's nvidia-smi stand-in and the 2x H200 transcripts live (tests/standins, tests/fixtures)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "standins" / "nvidia_smi.py"
H200X2 = ROOT / "tests" / "fixtures" / "nvidia-smi" / "h200x2"
