#!/usr/bin/env python3
"""The daily health check on the box: a short probe run with the gate's settings, its verdict appended to a
history (JSONL), and the trend page regenerated from that history.

Runs with the probe's own venv Python (standard library only here; the probe is started as a child):
    healthcheck.py run --dir /var/lib/classroom-probe/healthcheck --run-file /etc/classroom-probe/run.json \
        --python /opt/classroom-probe/venv/bin/python --duration 300 --warmup 10 --trigger timer
Exit status: 0 when the check passed, 1 when it did not (a failed, inconclusive or missing verdict), 2 on bad
input. A systemd unit that runs it therefore shows a failed check in `systemctl --failed` and the journal.
    healthcheck.py trend --dir DIR          regenerate trend.html from history.jsonl only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
TREND = "trend.html"


@dataclass(frozen=True)
class Entry:
    """One check, as one line of the history."""

    time: str
    day: str
    trigger: str
    status: str
    exit_code: int
    ttft_p95_ms: float | None
    student_output_tok_s_p50: float | None
    failures: int | None
    requests_ok: int | None
    report_dir: str
    error: str


@dataclass(frozen=True)
class Day:
    day: str
    checks: int
    passed: int
    ttft_p95_ms: float | None
    student_output_tok_s_p50: float | None
    failures: int


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def entry_from_report(report: dict[str, Any] | None, *, stamp: str, trigger: str, status: str, exit_code: int,
                      report_dir: str, error: str) -> Entry:
    agg: dict[str, Any] = (report or {}).get("aggregates") or {}
    ttft = ((agg.get("latency_ms") or {}).get("ttft") or {}).get("p95")
    speed = (agg.get("student_output_tok_s") or {}).get("p50")
    failures = agg.get("failures_total")
    ok = agg.get("requests_ok")
    return Entry(time=stamp, day=stamp[:10], trigger=trigger, status=status, exit_code=exit_code,
                 ttft_p95_ms=_num(ttft), student_output_tok_s_p50=_num(speed),
                 failures=int(failures) if isinstance(failures, int) else None,
                 requests_ok=int(ok) if isinstance(ok, int) else None, report_dir=report_dir, error=error)


def read_history(path: Path) -> list[Entry]:
    """Lines that do not parse (a half-written line after a power cut) are skipped, never fatal."""
    entries: list[Entry] = []
    if not path.exists():
        return entries
    fields = set(Entry.__dataclass_fields__)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and fields <= set(obj):
            entries.append(Entry(**{k: obj[k] for k in fields}))
    return entries


def append_history(path: Path, entry: Entry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def per_day(entries: Sequence[Entry]) -> list[Day]:
    """One row per day: the worst TTFT p95 and the slowest per-student speed of its checks, failures summed."""
    days: dict[str, list[Entry]] = {}
    for e in entries:
        days.setdefault(e.day, []).append(e)
    out = []
    for day in sorted(days):
        es = days[day]
        ttfts = [e.ttft_p95_ms for e in es if e.ttft_p95_ms is not None]
        speeds = [e.student_output_tok_s_p50 for e in es if e.student_output_tok_s_p50 is not None]
        out.append(Day(day=day, checks=len(es), passed=sum(e.status == "pass" for e in es),
                       ttft_p95_ms=max(ttfts) if ttfts else None,
                       student_output_tok_s_p50=min(speeds) if speeds else None,
                       failures=sum(e.failures or 0 for e in es)))
    return out


def _fmt(x: float | int | None) -> str:
    if x is None:
        return "-"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.1f}"


def _chart(title: str, unit: str, days: Sequence[Day], values: Sequence[float | None]) -> str:
    """A small line chart as inline SVG: the page opens with no network."""
    w, h, pad = 640, 180, 40
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    top = max((v for _, v in points), default=0.0) or 1.0
    step = (w - 2 * pad) / max(len(values) - 1, 1)
    coords = [(pad + i * step, h - pad - (v / top) * (h - 2 * pad)) for i, v in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(days[i].day)}: {_fmt(v)}</title></circle>'
                   for (x, y), (i, v) in zip(coords, points, strict=True))
    labels = ""
    if days:
        labels = (f'<text x="{pad}" y="{h - 10}">{escape(days[0].day)}</text>'
                  f'<text x="{w - pad}" y="{h - 10}" text-anchor="end">{escape(days[-1].day)}</text>')
    return (f'<figure><figcaption>{escape(title)} ({escape(unit)})</figcaption>'
            f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{escape(title)}">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#999"/>'
            f'<text x="{pad - 4}" y="{pad}" text-anchor="end">{_fmt(top)}</text>'
            f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{line}"/>{dots}{labels}</svg></figure>')


def trend_html(entries: Sequence[Entry], box: str) -> str:
    days = per_day(entries)
    rows = "".join(
        f"<tr><td>{escape(d.day)}</td><td>{d.passed} of {d.checks}</td><td>{_fmt(d.ttft_p95_ms)}</td>"
        f"<td>{_fmt(d.student_output_tok_s_p50)}</td><td>{_fmt(d.failures)}</td></tr>" for d in days)
    last = entries[-1] if entries else None
    latest = (f"<p>Latest check: <b>{escape(last.status)}</b> at {escape(last.time)} ({escape(last.trigger)}), "
              f"report {escape(last.report_dir or '-')}.</p>" if last else "<p>No check has run yet.</p>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>Daily health check on {escape(box)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "svg text{font-size:11px}</style></head><body>"
            f"<h1>Daily health check on {escape(box)}</h1>{latest}"
            + _chart("TTFT p95, worst check of the day", "ms", days, [d.ttft_p95_ms for d in days])
            + _chart("Answer speed per student p50, slowest check of the day", "tokens per second", days,
                     [d.student_output_tok_s_p50 for d in days])
            + _chart("Failed requests per day", "requests", days, [float(d.failures) for d in days])
            + "<h2>Per day</h2><table><tr><th>Day</th><th>Checks passed</th><th>TTFT p95 (ms)</th>"
              "<th>Per-student tok/s p50</th><th>Failures</th></tr>" + rows + "</table></body></html>\n")


def write_trend(folder: Path, box: str) -> Path:
    out = folder / TREND
    tmp = folder / f".{TREND}.tmp"
    tmp.write_text(trend_html(read_history(folder / HISTORY), box), encoding="utf-8")
    tmp.replace(out)
    return out


def run_check(a: argparse.Namespace) -> int:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report_dir = a.dir / "reports" / stamp.replace("-", "").replace(":", "")
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(a.python), "-m", "classroom_probe", "run", "--config", str(a.run_file), "--quiet",
            "--report-dir", str(report_dir), "--duration", str(a.duration), "--warmup", str(a.warmup)]
    limit = a.duration + a.warmup + 120
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = 124, "", f"the probe ran past {limit} s"
    verdict: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            verdict = obj
            break
    report: dict[str, Any] | None = None
    folder = verdict.get("report_dir") or str(report_dir)
    try:
        report = json.loads((Path(folder) / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        report = None
    status = str(verdict.get("status") or "missing")
    error = str(verdict.get("error") or "") or ("" if status in ("pass", "fail") else err.strip()[-500:])
    entry = entry_from_report(report, stamp=stamp, trigger=a.trigger, status=status, exit_code=code,
                              report_dir=folder if report is not None else "", error=error)
    append_history(a.dir / HISTORY, entry)
    write_trend(a.dir, a.box)
    print(json.dumps(asdict(entry), sort_keys=True))
    if status != "pass":
        table = str(verdict.get("checks_table") or "")
        sys.stderr.write(f"health check {status} (probe exit {code}){': ' + error if error else ''}\n{table}\n")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="healthcheck.py", description="The daily health check and its trend page.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the check, append its verdict to the history, regenerate the page")
    r.add_argument("--dir", type=Path, required=True, help="folder of history.jsonl, trend.html and reports/")
    r.add_argument("--run-file", type=Path, required=True, help="the gate's run file (the probe's settings)")
    r.add_argument("--python", type=Path, required=True, help="the probe venv's python")
    r.add_argument("--duration", type=int, required=True, help="seconds of measured load")
    r.add_argument("--warmup", type=int, default=10, help="seconds of warm-up")
    r.add_argument("--trigger", choices=("timer", "playbook", "hand"), default="hand")
    r.add_argument("--box", default=os.uname().nodename)
    t = sub.add_parser("trend", help="regenerate trend.html from history.jsonl")
    t.add_argument("--dir", type=Path, required=True)
    t.add_argument("--box", default=os.uname().nodename)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "trend":
        print(write_trend(a.dir, a.box))
        return 0
    for name, path in (("--run-file", a.run_file), ("--python", a.python)):
        if not path.exists():
            sys.stderr.write(f"bad input: {name} {path} does not exist (the gate, playbooks/gate.yml, installs the "
                             "probe and writes its run file)\n")
            return 2
    if a.duration < 1 or a.warmup < 0:
        sys.stderr.write("bad input: --duration must be 1 or more and --warmup 0 or more\n")
        return 2
    return run_check(a)


if __name__ == "__main__":
    sys.exit(main())
