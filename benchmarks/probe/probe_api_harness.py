"""Runs the probe's batch mode through its Python API and keeps every request's raw timings.

The probe's `records.jsonl` holds per-request summaries (TTFT, max gap); the
accuracy benchmark needs every inter-chunk gap and a key the truth server can
match. This harness calls `classroom_probe.runner.run` (the same code path as
`python -m classroom_probe run --mode batch`: dispatcher, watchers, health
monitor, report files) with an `on_record` hook that writes those raw fields.
Each prompt holds a tag `[tag:<i>]` that the truth server logs; batch mode sends
prompt i as request i, and the hook reads i from the record's index.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classroom_probe.config import Config
from classroom_probe.prompts import Prompt
from classroom_probe.records import RequestRecord
from classroom_probe.runner import run
from classroom_probe.thresholds import PROFILES

_FILLER = " ".join(f"w{i}" for i in range(31))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--max-tokens", type=int, required=True)
    p.add_argument("--time-limit", type=float, default=300.0)
    p.add_argument("--report-dir", required=True)
    p.add_argument("--out", required=True, help="JSONL of raw per-request timings")
    args = p.parse_args()
    config = Config(
        base_url=args.base_url,
        model=args.model,
        max_tokens=args.max_tokens,
        report_dir=Path(args.report_dir),
        api="completions",
        mode="batch",
        requests=args.requests,
        concurrency=args.concurrency,
        warmup=0.0,
        ignore_eos=True,
        prompts=[Prompt(text=f"[tag:{i}] {_FILLER}") for i in range(args.requests)],
        profile="lab",
        thresholds=PROFILES["lab"],
        metrics_url="off",
        gpu="off",
        quiet=True,
        batch_time_limit=args.time_limit,
    )
    with Path(args.out).open("w", encoding="utf-8") as out:

        def on_record(rec: RequestRecord) -> None:
            line = {
                "tag": str(rec.index),
                "start_ns": rec.start_ns,
                "first_token_ns": rec.first_token_ns,
                "gaps_ns": rec.gaps_ns,
                "output_tokens": rec.output_tokens,
                "failure": rec.failure_key,
            }
            out.write(json.dumps(line) + "\n")

        result = run(config, on_record)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
