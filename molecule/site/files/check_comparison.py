"""Test code: every figure of the comparison page equals the figure in the two reports it names.

Usage: check_comparison.py PAGE.md BEFORE/report.json AFTER/report.json. Reads the page's table of figures
and computes each figure again from the reports with the probe's own getters and rounding; exits 1 naming
every mismatch, 0 when all agree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from classroom_probe.compare import FIGURES
from classroom_probe.textfmt import sig


def page_rows(markdown: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def main(page: Path, before: Path, after: Path) -> int:
    rows = page_rows(page.read_text(encoding="utf-8"))
    a, b = json.loads(before.read_text(encoding="utf-8")), json.loads(after.read_text(encoding="utf-8"))
    problems = []
    for label, get, _ in FIGURES:
        want = (sig(get(a)), sig(get(b)))
        if rows.get(label) != want:
            problems.append(f"{label}: page {rows.get(label)}, reports {want}")
    checked = len(FIGURES) - len(problems)
    print(f"{checked} of {len(FIGURES)} figures equal those in the reports")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
