"""Writes docs/hardware-validation/SUMMARY.md from a results folder fetched from the GPU host.

    python hardware/summarize.py RESULTS_DIR [--out docs/hardware-validation/SUMMARY.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hwval.summarize import write_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the unpacked results folder (holds results.json)")
    parser.add_argument("--out", type=Path, default=Path("docs/hardware-validation/SUMMARY.md"))
    args = parser.parse_args()
    print(write_summary(args.results, args.out))


if __name__ == "__main__":
    main()
