"""`compare`: two runs side by side (e.g. Ollama before, vLLM after), with the difference of each figure.

Each figure pairs the two runs on one scale; the table gives A, B, B - A and the change in percent,
coloured by whether the change is for the better."""

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Literal, cast

from classroom_probe import SCHEMA_VERSION, svg
from classroom_probe.errors import BadInput
from classroom_probe.inputs import MIB, read_json
from classroom_probe.render import load_line, page, table
from classroom_probe.report import Report
from classroom_probe.textfmt import num, sig

Better = Literal["lower", "higher", ""]
REPORT_MAX_BYTES = 512 * MIB


def load_report(path: Path, field: str) -> Report:
    obj = read_json(path, field, REPORT_MAX_BYTES)
    if not isinstance(obj, dict) or obj.get("schema_version") != SCHEMA_VERSION:
        found = obj.get("schema_version") if isinstance(obj, dict) else None
        raise BadInput(field, f"{path} is not a probe report of schema version {SCHEMA_VERSION}"
                              f"{f' (it is version {found})' if found is not None else ''}")
    return cast(Report, obj)


def compare(path_a: Path, path_b: Path, out: Path) -> list[Path]:
    a = load_report(path_a, "first report")
    b = load_report(path_b, "second report")
    name_a, name_b = _name(path_a, a), _name(path_b, b)
    try:
        out.mkdir(parents=True, exist_ok=True)
        md = out / "compare.md"
        html_path = out / "compare.html"
        md.write_text(compare_markdown(a, b, name_a, name_b), encoding="utf-8")
        html_path.write_text(compare_html(a, b, name_a, name_b), encoding="utf-8")
    except OSError as exc:
        raise BadInput("--out", f"cannot write {out}: {exc.strerror}") from exc
    return [md, html_path]


def _name(path: Path, report: Report) -> str:
    return f"{path.parent.name or path.name} ({report['config']['api']})"


Row = tuple[str, float | None, float | None, Better]
Getter = Callable[[Report], float | None]


def _latency(name: Literal["ttft", "itl", "tpot", "e2e"], p: Literal["p50", "p95", "p99"]) -> Getter:
    return lambda r: r["aggregates"]["latency_ms"][name][p]


LATENCY_ROWS: tuple[tuple[Literal["ttft", "itl", "tpot", "e2e"], str], ...] = (
    ("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))
PCTS: tuple[Literal["p50", "p95", "p99"], ...] = ("p50", "p95", "p99")
FIGURES: list[tuple[str, Getter, Better]] = [
    ("Requests ok", lambda r: r["aggregates"]["requests_ok"], "higher"),
    ("Failed requests", lambda r: r["aggregates"]["failures_total"], "lower"),
    ("Output tok/s (all students)", lambda r: r["aggregates"]["output_tok_s"], "higher"),
    ("Requests/s", lambda r: r["aggregates"]["requests_per_s"], "higher"),
    ("Goodput requests/s", lambda r: r["aggregates"]["goodput_per_s"], "higher"),
    ("Answer speed p50 (tok/s)", lambda r: r["aggregates"]["student_output_tok_s"]["p50"], "higher"),
    *((f"{label} {p} (ms)", _latency(name, p), "lower") for name, label in LATENCY_ROWS for p in PCTS),
    ("Probe loop lag p99 (ms)", lambda r: r["probe_health"]["gate_lag_p99_ms"], "lower"),
]


def figures(a: Report, b: Report) -> list[Row]:
    return [(label, get(a), get(b), better) for label, get, better in FIGURES]


def _delta(x: float | None, y: float | None, better: Better) -> tuple[str, str, str]:
    if x is None or y is None:
        return "-", "-", ""
    d = y - x
    pct = "-" if x == 0 else f"{100 * d / abs(x):+.1f} %"
    good = "" if d == 0 or not better else ("better" if (d < 0) == (better == "lower") else "worse")
    return f"{'+' if d > 0 else ''}{sig(d)}", pct, good


def _text_rows(a: Report, b: Report) -> list[tuple[str, str, str]]:
    ga = ", ".join(num(g["util_mean_pct_window"]) for g in a["gpu"]["gpus"]) or "-"
    gb = ", ".join(num(g["util_mean_pct_window"]) for g in b["gpu"]["gpus"]) or "-"
    return [("Verdict", a["verdict"]["status"], b["verdict"]["status"]),
            ("Server", f"{a['config']['base_url']} ({a['server']['software'] or a['config']['api']} "
                       f"{a['server']['version'] or ''})".replace(" )", ")"),
             f"{b['config']['base_url']} ({b['server']['software'] or b['config']['api']} "
             f"{b['server']['version'] or ''})".replace(" )", ")")),
            ("Model", a["config"]["model"], b["config"]["model"]),
            ("Load", load_line(a["config"]), load_line(b["config"])),
            ("GPU utilisation mean, per GPU (%)", ga, gb)]


def compare_markdown(a: Report, b: Report, name_a: str, name_b: str) -> str:
    lines = ["# Probe comparison", "", f"A: {name_a}; B: {name_b}.", "", "| figure | A | B |", "|---|---|---|"]
    lines += [f"| {k} | {x} | {y} |" for k, x, y in _text_rows(a, b)]
    lines += ["", "| figure | A | B | B - A | change |", "|---|---|---|---|---|"]
    for label, x, y, better in figures(a, b):
        d, pct, good = _delta(x, y, better)
        lines.append(f"| {label} | {sig(x)} | {sig(y)} | {d} | {pct}{f' ({good})' if good else ''} |")
    return "\n".join(lines) + "\n"


def compare_html(a: Report, b: Report, name_a: str, name_b: str) -> str:
    rows: list[list[object]] = []
    for label, x, y, better in figures(a, b):
        d, pct, good = _delta(x, y, better)
        rows.append([label, sig(x), sig(y), (d, good), (pct, good)])
    body = [f"<h1>Probe comparison</h1><p><b>A</b>: {escape(name_a)}; <b>B</b>: {escape(name_b)}.</p>",
            table(["Figure", "A", "B"], [[k, x, y] for k, x, y in _text_rows(a, b)], "meta"),
            "<h2>Figures</h2>", table(["Figure", "A", "B", "B - A", "Change"], rows, "cmp"),
            '<h2>Side by side</h2><div class="plots">', *_charts(a, b, name_a, name_b), "</div>"]
    return page("Probe comparison", "\n".join(body))


def _charts(a: Report, b: Report, name_a: str, name_b: str) -> list[str]:
    def pair(getters: list[Getter]) -> list[tuple[str, list[float | None]]]:
        return [(f"A: {name_a}", [g(a) for g in getters]), (f"B: {name_b}", [g(b) for g in getters])]

    charts = []
    for metric, title in LATENCY_CHARTS:
        charts.append(svg.bars(f"{title} (ms)", ["p50", "p95", "p99"],
                               pair([_latency(metric, "p50"), _latency(metric, "p95"), _latency(metric, "p99")]),
                               ylabel="ms"))
    charts.append(svg.bars("Output throughput", ["all students"], pair([lambda r: r["aggregates"]["output_tok_s"]]),
                           ylabel="tokens per second"))
    charts.append(svg.bars("Answer speed per student (median)", ["p50"],
                           pair([lambda r: r["aggregates"]["student_output_tok_s"]["p50"]]),
                           ylabel="tokens per second"))
    charts.append(svg.bars("Failed requests", ["all kinds"], pair([lambda r: r["aggregates"]["failures_total"]]),
                           ylabel="requests"))
    charts.append(svg.line_chart("Output throughput over time", [
        svg.Series(f"A: {name_a}", a["throughput_series"]["t_s"], a["throughput_series"]["output_tok_s"]),
        svg.Series(f"B: {name_b}", b["throughput_series"]["t_s"], b["throughput_series"]["output_tok_s"])],
        xlabel="time since start (s)", ylabel="tokens per second"))
    return charts


LATENCY_CHARTS: tuple[tuple[Literal["ttft", "itl", "e2e"], str], ...] = (
    ("ttft", "Time to first token"), ("itl", "Inter-token latency"), ("e2e", "End-to-end latency"))
