#!/usr/bin/python3
"""Publishes the newest gate verdict and daily health-check result as Prometheus metrics.

    classroom_verdicts.py --reports DIR --history FILE --out FILE

Reads the newest <DIR>/<UTC stamp>/report.json the gate (concurrency_probe) wrote and the last line of the daily
health check's history (one JSON object a line), and writes FILE in Prometheus' text format for node-exporter's
textfile collector: written to a temporary file beside it and renamed, so a scrape never reads half a file.
Runs under the box's own python3 (standard library only) from a systemd timer and path unit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STATUSES = ("pass", "fail", "inconclusive")
HISTORY_TAIL_BYTES = 1 << 16


@dataclass(frozen=True)
class Verdict:
    """One check's newest result, as published; a None figure is left out rather than written as 0."""

    check: str
    status: str
    timestamp_s: float | None
    ttft_p95_s: float | None
    student_tok_s_p50: float | None
    failures: float | None
    report_dir: str


@dataclass(frozen=True)
class Found:
    """What was looked at for one check: the newest readable verdict (if any) and how many newer were unreadable."""

    check: str
    verdict: Verdict | None
    unreadable: int


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _epoch(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


def _get(doc: Any, *keys: str) -> object:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def gate_verdict(report: Path) -> Verdict | None:
    """The gate's report.json (probe/report.schema.json), or None when it is not one."""
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    status = _get(doc, "verdict", "status")
    if not isinstance(status, str):
        return None
    ttft_ms = _number(_get(doc, "aggregates", "latency_ms", "ttft", "p95"))
    return Verdict("gate", status, _epoch(_get(doc, "finished_at")), None if ttft_ms is None else ttft_ms / 1000.0,
                   _number(_get(doc, "aggregates", "student_output_tok_s", "p50")),
                   _number(_get(doc, "aggregates", "failures_total")), str(report.parent))


def newest_gate(reports: Path) -> Found:
    """The newest run folder holding a readable report.json; stamps are UTC and sort as text."""
    try:
        runs = sorted((p for p in reports.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return Found("gate", None, 0)
    unreadable = 0
    for run in runs:
        report = run / "report.json"
        if not report.is_file():
            continue  # a run still going, or one that ended before its reports
        verdict = gate_verdict(report)
        if verdict is not None:
            return Found("gate", verdict, unreadable)
        unreadable += 1
    return Found("gate", None, unreadable)


def daily_verdict(line: str) -> Verdict | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    status = _get(doc, "status")
    if not isinstance(status, str):
        return None
    ttft_ms = _number(_get(doc, "ttft_p95_ms"))
    report_dir = _get(doc, "report_dir")
    return Verdict("daily", status, _epoch(_get(doc, "time")), None if ttft_ms is None else ttft_ms / 1000.0,
                   _number(_get(doc, "student_output_tok_s_p50")), _number(_get(doc, "failures")),
                   report_dir if isinstance(report_dir, str) else "")


def newest_daily(history: Path) -> Found:
    """The last readable line of the history; only its tail is read, however long the history grows."""
    try:
        with history.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - HISTORY_TAIL_BYTES))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return Found("daily", None, 0)
    lines = [line for line in tail.splitlines() if line.strip()]
    if size > HISTORY_TAIL_BYTES and lines:
        lines = lines[1:]  # the first line of the tail may be cut
    unreadable = 0
    for line in reversed(lines):
        verdict = daily_verdict(line)
        if verdict is not None:
            return Found("daily", verdict, unreadable)
        unreadable += 1
    return Found("daily", None, unreadable)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return repr(float(value))


FAMILIES: tuple[tuple[str, str], ...] = (
    ("classroom_check_present", "1 when a verdict of this check was found"),
    ("classroom_check_status", "1 for the status of the check's newest verdict, 0 for the others"),
    ("classroom_check_timestamp_seconds", "When the check's newest verdict was reached (Unix time)"),
    ("classroom_check_ttft_p95_seconds", "Time to first token, p95, measured by the check"),
    ("classroom_check_student_output_tokens_per_second", "Output tokens per second per student, p50, of the check"),
    ("classroom_check_failures", "Failed requests in the check's run"),
    ("classroom_check_info", "Always 1; report_dir names the newest verdict's report"),
    ("classroom_check_unreadable_files", "Newer reports or history lines that could not be read and were passed over"),
)


def render(found: Sequence[Found]) -> str:
    """Prometheus' text format, one family at a time (HELP and TYPE once each, as the format requires)."""
    rows: dict[str, list[str]] = {name: [] for name, _ in FAMILIES}
    for f in found:
        check = f'check="{_label(f.check)}"'
        rows["classroom_check_present"].append(f"{{{check}}} {_value(f.verdict is not None)}")
        rows["classroom_check_unreadable_files"].append(f"{{{check}}} {_value(f.unreadable)}")
        v = f.verdict
        if v is None:
            continue
        for status in (*STATUSES, *([v.status] if v.status not in STATUSES else [])):
            rows["classroom_check_status"].append(
                f'{{{check},status="{_label(status)}"}} {_value(status == v.status)}')
        for name, figure in (("classroom_check_timestamp_seconds", v.timestamp_s),
                             ("classroom_check_ttft_p95_seconds", v.ttft_p95_s),
                             ("classroom_check_student_output_tokens_per_second", v.student_tok_s_p50),
                             ("classroom_check_failures", v.failures)):
            if figure is not None:
                rows[name].append(f"{{{check}}} {_value(figure)}")
        rows["classroom_check_info"].append(f'{{{check},report_dir="{_label(v.report_dir)}"}} 1.0')
    out: list[str] = []
    for name, doc in FAMILIES:
        if rows[name]:
            out += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", *(name + row for row in rows[name])]
    return "\n".join(out) + "\n"


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reports", type=Path, required=True, help="the gate's reports folder")
    ap.add_argument("--history", type=Path, required=True, help="the daily health check's history (JSON lines)")
    ap.add_argument("--out", type=Path, required=True, help="the .prom file node-exporter's textfile collector reads")
    args = ap.parse_args(argv)
    text = render([newest_gate(args.reports), newest_daily(args.history)])
    try:
        write_atomically(args.out, text)
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
