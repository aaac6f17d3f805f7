"""Runs the probe from a run file through its Python API and keeps every request's raw timings.

The probe's `records.jsonl` holds per-request summaries (TTFT, max gap); the
accuracy benchmark needs every inter-chunk gap and a key the truth server can
match. This harness reads the run file the benchmark wrote from the probe's
`Config` (`Config.from_file`, the same validation as `run --config`) and calls
`classroom_probe.runner.run` (the CLI's code path: dispatcher, watchers, health
monitor, report files) with an `on_record` hook. The hook only keeps each
record; they are written after the run, so serialising them costs the probe
nothing while it measures. Each prompt holds a tag `[tag:<i>]` that the truth
server logs; batch mode sends prompt i as request i, and record index i names it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classroom_probe.config import Config
from classroom_probe.errors import BadInput, ProbeError
from classroom_probe.records import RequestRecord
from classroom_probe.runner import run

EXIT_BAD_INPUT = 2
EXIT_PROBE_ERROR = 3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path, help="the probe's run file (JSON)")
    p.add_argument("--out", required=True, type=Path, help="JSONL of raw per-request timings")
    args = p.parse_args()
    kept: list[RequestRecord] = []
    try:
        config = Config.from_file(args.config)
        result = run(config, kept.append)
    except BadInput as exc:
        print(f"bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ProbeError as exc:
        print(f"probe error: {exc}", file=sys.stderr)
        return EXIT_PROBE_ERROR
    with args.out.open("w", encoding="utf-8") as out:
        for rec in kept:
            line = {
                "tag": str(rec.index),
                "start_ns": rec.start_ns,
                "first_token_ns": rec.first_token_ns,
                "gaps_ns": rec.gaps_ns,
                "output_tokens": rec.output_tokens,
                "failure": rec.failure_key,
            }
            out.write(json.dumps(line) + "\n")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
