"""Both probe benchmarks in one command: accuracy (probe-accuracy.md), then scale (probe-scale.md).

    python benchmarks/probe/all.py --out docs/benchmarks

Each keeps its own load-average discipline (quiet.py); the scale part waits for the accuracy part's own
load to fade rather than refusing. Options not listed here: run accuracy.py or scale.py on their own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import accuracy
import scale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for both pages, results/ under it")
    p.add_argument("--smoke", action="store_true", help="the short runs of both (figures not fit to commit)")
    p.add_argument("--allow-busy", action="store_true", help="run on a busy machine, figures flagged as busy")
    p.add_argument("--max-load", type=float, default=1.0, help="quiet below this 1-minute load average [1.0]")
    p.add_argument("--retries", type=int, help="redo a disturbed sweep at most this many times [each part's own]")
    p.add_argument("--cooldown", type=float, default=300.0, help="seconds to wait for the load to fall [300]")
    p.add_argument("--accuracy-notes", type=Path, help="Findings for probe-accuracy.md (Markdown file)")
    p.add_argument("--scale-notes", type=Path, help="Findings for probe-scale.md (Markdown file)")
    a = p.parse_args(argv)
    common = ["--out", str(a.out), "--max-load", str(a.max_load), "--cooldown", str(a.cooldown)]
    common += ["--smoke"] if a.smoke else []
    common += ["--allow-busy"] if a.allow_busy else []
    common += ["--retries", str(a.retries)] if a.retries is not None else []
    t0 = time.monotonic()
    rc = accuracy.main(common + (["--notes", str(a.accuracy_notes)] if a.accuracy_notes else []))
    print(f"accuracy: exit {rc} after {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    if rc != 0:
        return rc
    t1 = time.monotonic()
    rc = scale.main(common + ["--wait"] + (["--notes", str(a.scale_notes)] if a.scale_notes else []))
    print(f"scale: exit {rc} after {(time.monotonic() - t1) / 60:.1f} min; "
          f"{(time.monotonic() - t0) / 60:.1f} min in all", flush=True)  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main())
