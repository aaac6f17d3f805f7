"""Judges a failover run through the gateway from the probe's per-request records.

A box's backend is stopped during a probe run. The run passes when it lost at most the requests that
were in flight on that box when it stopped, and no request that started later than the stop plus one
health-check interval failed. Times: records carry `start_s` from the probe's time zero; the stop is a
wall-clock time, mapped onto the run through the status file the probe wrote shortly before it
(`origin = mtime - elapsed_s`), with a slack for that mapping.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_SHOWN = 20


@dataclass(frozen=True)
class Failover:
    requests: int
    failed: int
    in_flight_on_box: int
    failed_after_window: int
    ok_after_stop: int
    stop_s: float
    window_s: float
    failure_kinds: dict[str, int]
    # Each failed request: when it started relative to the stop, how far its answer got, and the error.
    failed_requests: list[dict[str, object]]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


def judge(records: list[dict[str, object]], *, stop_s: float, interval_s: float, slack_s: float,
          in_flight_on_box: int) -> Failover:
    window = stop_s + interval_s + slack_s
    failed = [r for r in records if not r.get("ok")]
    late = [r for r in failed if float(str(r["start_s"])) > window]
    ok_after = sum(1 for r in records if r.get("ok") and float(str(r["start_s"])) > window)
    kinds: dict[str, int] = {}
    for r in failed:
        key = str(r.get("failure"))
        kinds[key] = kinds.get(key, 0) + 1
    problems = []
    if len(failed) > in_flight_on_box:
        problems.append(f"{len(failed)} requests failed, more than the {in_flight_on_box} in flight on the stopped box")
    if late:
        problems.append(f"{len(late)} requests that started after the stop plus one health-check interval "
                        f"({window:.2f} s into the run) failed: {[r.get('failure') for r in late][:10]}")
    if ok_after == 0:
        problems.append("no request succeeded after the stop: the other box did not take over")
    shown = [{"after_stop_s": round(float(str(r["start_s"])) - stop_s, 3), "failure": r.get("failure"),
              "chunks": r.get("chunks"), "error": str(r.get("error", ""))[:120]}
             for r in sorted(failed, key=lambda r: float(str(r["start_s"])))[:MAX_SHOWN]]
    return Failover(len(records), len(failed), in_flight_on_box, len(late), ok_after, round(stop_s, 3),
                    round(window, 3), dict(sorted(kinds.items())), shown, problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=Path, required=True, help="the probe's records.jsonl")
    parser.add_argument("--status-mtime", type=float, required=True, help="wall time the status file was written")
    parser.add_argument("--status-elapsed", type=float, required=True, help="its elapsed_s")
    parser.add_argument("--stop-wall", type=float, required=True, help="wall time the backend was stopped")
    parser.add_argument("--interval-s", type=float, required=True, help="the gateway's health-check interval")
    parser.add_argument("--slack-s", type=float, default=0.5, help="allowance for mapping wall time onto the run")
    parser.add_argument("--in-flight", type=int, required=True, help="completions in flight on the box at the stop")
    args = parser.parse_args(argv)
    lines = args.records.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    stop_s = args.stop_wall - (args.status_mtime - args.status_elapsed)
    result = judge(records, stop_s=stop_s, interval_s=args.interval_s, slack_s=args.slack_s,
                   in_flight_on_box=args.in_flight)
    print(json.dumps({**asdict(result), "passed": result.passed}))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
