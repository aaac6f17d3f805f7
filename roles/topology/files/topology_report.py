#!/usr/bin/env python3
"""Ranks the measured layouts and writes topology.{json,md,html} (standard library only).

Input: runs.json as roles/topology/tasks/report.yml writes it; each run names its probe report
(ramp mode) and, where the preflight ran, its preflight.json with the capacity estimate.
Ranking: the largest class that met the SLO, then output tok/s at the class size, then output tok/s
at the largest passing step. A layout that did not start ranks last with vLLM's reason.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Step:
    students: int
    ttft_p95_ms: float | None
    student_tok_s: float | None
    output_tok_s: float | None
    failures: int
    passed: bool


@dataclass
class LayoutResult:
    name: str
    layout: dict[str, Any]
    started: bool
    error: str = ""
    largest_class: int | None = None
    steps: list[Step] = field(default_factory=list)
    tok_s_at_class: float | None = None
    student_tok_s_at_class: float | None = None
    ttft_p95_at_class: float | None = None
    tok_s_at_largest: float | None = None
    predicted_class: int | None = None
    predicted_note: str = ""
    report: str = ""
    gpu: str = ""
    driver: str = ""
    server_version: str = ""
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction_error_pct(self) -> float | None:
        if self.predicted_class is None or not self.largest_class:
            return None
        return round(100.0 * (self.predicted_class - self.largest_class) / self.largest_class, 1)


@dataclass(frozen=True)
class Comparison:
    host: str
    class_size: int
    ramp: dict[str, Any]
    conditions: dict[str, Any]
    thresholds: dict[str, Any]
    ranking: list[LayoutResult]
    winner: dict[str, Any] | None
    recommendation: str


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _at_class(steps: list[Step], class_size: int) -> Step | None:
    """The step at the class size, else the largest step below it, else the first."""
    below = [s for s in steps if s.students <= class_size]
    return max(below, key=lambda s: s.students) if below else (steps[0] if steps else None)


def load_run(run: dict[str, Any], class_size: int) -> LayoutResult:
    layout = dict(run["layout"])
    result = LayoutResult(
        name=str(layout["name"]),
        layout=layout,
        started=bool(run.get("started")),
        error=str(run.get("error", "")),
        report=str(run.get("report", "")),
    )
    preflight = _read_json(run["preflight"]) if run.get("preflight") else None
    capacity = (preflight or {}).get("capacity")
    if isinstance(capacity, dict):
        result.predicted_class = capacity.get("largest_class")
        result.predicted_note = f"limited by {capacity.get('limited_by', '?')}"
    elif preflight is not None:
        result.predicted_note = "no estimate: " + (
            "profile cpu_lab (no GPU)" if preflight.get("profile") == "cpu_lab" else "see the preflight report"
        )
    if not result.started:
        return result
    report = _read_json(result.report)
    if report is None:
        result.started, result.error = False, f"no probe report at {result.report}"
        return result
    ramp = (report.get("load") or {}).get("ramp") or {}
    for row in ramp.get("steps") or []:
        result.steps.append(
            Step(
                int(row["students"]),
                _num(row.get("ttft_p95_ms")),
                _num(row.get("student_output_tok_s_p50")),
                _num(row.get("output_tok_s")),
                int(row.get("failures") or 0),
                bool(row.get("passed")),
            )
        )
    result.largest_class = ramp.get("largest_passing_students") or 0
    step = _at_class(result.steps, class_size)
    if step:
        result.tok_s_at_class, result.student_tok_s_at_class = step.output_tok_s, step.student_tok_s
        result.ttft_p95_at_class = step.ttft_p95_ms
    best = [s for s in result.steps if s.students == result.largest_class]
    result.tok_s_at_largest = best[0].output_tok_s if best else None
    gpus = (report.get("gpu") or {}).get("gpus") or []
    result.gpu = ", ".join(sorted({str(g.get("name")) for g in gpus if g.get("name")}))
    result.driver = str((report.get("gpu") or {}).get("driver_version") or "")
    result.server_version = str((report.get("server") or {}).get("version") or "")
    result.thresholds = (report.get("config") or {}).get("thresholds") or {}
    return result


def rank(results: list[LayoutResult]) -> list[LayoutResult]:
    return sorted(
        results,
        key=lambda r: (
            not r.started,
            -(r.largest_class or 0),
            -(r.tok_s_at_class or 0.0),
            -(r.tok_s_at_largest or 0.0),
        ),
    )


def recommend(
    ranking: list[LayoutResult], class_size: int, inventory: dict[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    passing = [r for r in ranking if r.started and r.largest_class]
    if not passing:
        return (
            None,
            "No layout met the SLO at any ramp step: keep the inventory's layout and read each layout's report.",
        )
    top = passing[0]
    sizes = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
    winner = {k: int(top.layout.get(k, 1)) for k in sizes} | {"name": top.name}
    same = [r.name for r in passing[1:] if r.largest_class == top.largest_class]
    text = (
        f"Recommended: {top.name}: the largest class within the SLO ({top.largest_class} students)"
        + (f", tied with {', '.join(same)} and ahead on output throughput at the class size" if same else "")
        + (f"; {top.tok_s_at_class:,.1f} output tok/s at {class_size} students." if top.tok_s_at_class else ".")
    )
    if top.largest_class is not None and top.largest_class < class_size:
        text += f" Even it falls short of the class of {class_size}."
    if all(int(inventory.get(k, 1)) == winner[k] for k in sizes):
        text += " That is the inventory's layout already."
    else:
        text += " Apply it with -e topology_apply=true."
    return winner, text


def _fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for i, r in enumerate(c.ranking, 1):
        if not r.started:
            rows.append(
                [str(i), r.name, "did not start", "-", "-", "-", "-", _fmt(r.predicted_class), "-", r.error[:300]]
            )
            continue
        rows.append(
            [
                str(i),
                r.name,
                _fmt(r.largest_class),
                _fmt(r.tok_s_at_class),
                _fmt(r.student_tok_s_at_class),
                _fmt(r.ttft_p95_at_class),
                _fmt(r.tok_s_at_largest),
                _fmt(r.predicted_class),
                "-" if r.prediction_error_pct is None else f"{r.prediction_error_pct:+.1f} %",
                r.predicted_note,
            ]
        )
    return rows


HEADER = [
    "rank",
    "layout",
    "largest class within the SLO",
    "output tok/s at the class",
    "per-student tok/s (p50) at the class",
    "TTFT p95 ms at the class",
    "output tok/s at the largest class",
    "predicted class (estimate)",
    "prediction error",
    "note",
]


def conditions_lines(c: Comparison) -> list[str]:
    cond, first = c.conditions, next((r for r in c.ranking if r.started), None)
    return [
        f"Host {c.host}; engine {cond.get('vllm_package')} {cond.get('vllm_version')}"
        + (f" (server reports {first.server_version})" if first and first.server_version else "")
        + f"; model {cond.get('model')} ({cond.get('dtype')}), max_model_len {cond.get('max_model_len')}, "
        f"max_num_seqs {cond.get('max_num_seqs')} per replica.",
        (
            f"GPUs: {first.gpu}" + (f", driver {first.driver}" if first.driver else "") + "."
            if first.gpu
            else "No GPU seen by the probe: these are CPU figures and say nothing about GPUs."
        )
        if first
        else "GPUs: no layout started.",
        f"Ramp: {c.ramp['start']} to {c.ramp['max']} students, step {c.ramp['step']}, {c.ramp['step_duration_s']} s "
        f"measured per step; class size {c.class_size}; probe profile {cond.get('probe_profile')} "
        f"(TTFT p95 <= {c.thresholds.get('ttft_p95_ms_max')} ms, per-student >= "
        f"{c.thresholds.get('student_output_tok_s_min')} tok/s).",
        "The predicted class is the preflight's estimate (KV capacity, max_num_seqs and a bandwidth model), not a "
        "measurement; prediction error = (predicted - measured) / measured.",
    ]


def markdown(c: Comparison) -> str:
    lines = [
        f"# Layouts compared on {c.host}",
        "",
        *conditions_lines(c),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in row) + " |" for row in table_rows(c)
    ]
    lines += ["", f"**{c.recommendation}**", "", "## Ramp steps", ""]
    for r in c.ranking:
        if not r.started:
            continue
        lines += [
            f"### {r.name}",
            "",
            "| students | TTFT p95 ms | per-student tok/s | output tok/s | failures | SLO |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s.students} | {_fmt(s.ttft_p95_ms)} | {_fmt(s.student_tok_s)} | {_fmt(s.output_tok_s)} | "
            f"{s.failures} | {'met' if s.passed else 'missed'} |"
            for s in r.steps
        ]
        lines += ["", f"Probe report: `{r.report}`", ""]
    return "\n".join(lines) + "\n"


def _svg(c: Comparison, key: str, title: str, limit: float | None, log: bool = False) -> str:
    width, height, left, bottom, top, right = 640, 320, 64, 40, 28, 150
    series = [
        (r.name, [(s.students, getattr(s, key)) for s in r.steps if getattr(s, key) is not None])
        for r in c.ranking
        if r.started and r.steps
    ]
    points = [p for _, pts in series for p in pts]
    if not points:
        return f"<p>{html.escape(title)}: no data.</p>"
    xmax = max(x for x, _ in points) or 1
    ymax = max([y for _, y in points] + ([limit] if limit else [])) * 1.1 or 1.0
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + pw * x / xmax

    def sy(y: float) -> float:
        return top + ph * (1 - y / ymax)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>',
        f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle">students</text>',
    ]
    for i in range(5):
        yv, xv = ymax * i / 4, xmax * i / 4
        out.append(f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" font-size="10" text-anchor="end">{yv:,.0f}</text>')
        out.append(f'<text x="{sx(xv):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{xv:,.0f}</text>')
    if limit:
        out.append(
            f'<line x1="{left}" y1="{sy(limit):.1f}" x2="{left + pw}" y2="{sy(limit):.1f}" stroke="#888" '
            f'stroke-dasharray="6 4"/><text x="{left + pw + 4}" y="{sy(limit) + 4:.1f}" '
            f'font-size="10">SLO {limit:g}</text>'
        )
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out += [
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"><title>{html.escape(name)}: '
            f"{x} students, {y:,.1f}</title></circle>"
            for x, y in pts
        ]
        out.append(
            f'<text x="{left + pw + 4}" y="{top + 28 + 16 * i}" font-size="11" '
            f'fill="{colour}">{html.escape(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def html_page(c: Comparison) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table_rows(c))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    conditions = "".join(f"<p>{html.escape(line)}</p>" for line in conditions_lines(c))
    charts = (
        _svg(c, "ttft_p95_ms", "TTFT p95 (ms) per ramp step", _num(c.thresholds.get("ttft_p95_ms_max")))
        + _svg(
            c,
            "student_tok_s",
            "Per-student output tok/s (p50) per ramp step",
            _num(c.thresholds.get("student_output_tok_s_min")),
        )
        + _svg(c, "output_tok_s", "Output tok/s (all students) per ramp step", None)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Layouts compared on '
        f"{html.escape(c.host)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head>"
        f"<body><h1>Layouts compared on {html.escape(c.host)}</h1>{conditions}<table><tr>{head}</tr>{rows}</table>"
        f"<p><strong>{html.escape(c.recommendation)}</strong></p><h2>Ramp curves</h2>{charts}</body></html>\n"
    )


def text_summary(c: Comparison) -> str:
    lines = [" | ".join(HEADER[:3] + HEADER[3:4] + HEADER[7:9])]
    lines += [" | ".join(row[:4] + row[7:9]) for row in table_rows(c)]
    return "\n".join([*lines, c.recommendation])


def build(runs: dict[str, Any]) -> Comparison:
    class_size = int(runs["class_size"])
    results = rank([load_run(run, class_size) for run in runs.get("runs", [])])
    winner, text = recommend(results, class_size, runs.get("inventory_layout") or {})
    thresholds = next((r.thresholds for r in results if r.started), {})
    return Comparison(
        str(runs.get("host", "")),
        class_size,
        dict(runs["ramp"]),
        dict(runs.get("conditions") or {}),
        thresholds,
        results,
        winner,
        text,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        runs = json.loads(args.runs.read_text())
    except (OSError, ValueError) as exc:
        print(f"topology_report: cannot read {args.runs}: {exc}", file=sys.stderr)
        return 2
    c = build(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "topology.md").write_text(markdown(c))
    (args.out / "topology.html").write_text(html_page(c))
    data = {
        "host": c.host,
        "class_size": c.class_size,
        "ramp": c.ramp,
        "conditions": c.conditions,
        "thresholds": c.thresholds,
        "winner": c.winner,
        "recommendation": c.recommendation,
        "text": text_summary(c),
        "ranking": [asdict(r) | {"prediction_error_pct": r.prediction_error_pct} for r in c.ranking],
    }
    (args.out / "topology.json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
