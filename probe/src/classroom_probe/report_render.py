"""Markdown and self-contained HTML renderings of a report document (and of two, side by side)."""

from html import escape
from typing import Any

from classroom_probe import svg

Report = dict[str, Any]
LATENCIES = ("ttft", "itl", "itl_per_token", "tpot", "e2e")
COLS = ("p50", "p90", "p95", "p99", "max", "count")


def _v(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.3f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:,.0f}"
    return str(x)


def _load_line(cfg: dict[str, Any]) -> str:
    mode = cfg["mode"]
    if mode == "classroom":
        return (f"classroom, {cfg['students']} students, {cfg['duration_s']:g} s after {cfg['warmup_s']:g} s warm-up, "
                f"think {cfg['think_min_s']:g}-{cfg['think_max_s']:g} s")
    if mode == "batch":
        return f"batch, {cfg['requests']} requests at concurrency {cfg['concurrency']}"
    if mode == "rate":
        arrivals = "Poisson" if cfg["poisson"] else "constant"
        return (f"rate, {cfg['rate_rps']:g} req/s {arrivals} for {cfg['duration_s']:g} s, "
                f"at most {cfg['concurrency']} in flight")
    ramp = cfg["ramp"]
    return f"ramp, {ramp['start']} to {ramp['max']} students by {ramp['step']}, {ramp['step_duration_s']:g} s a step"


def _headline(r: Report) -> list[tuple[str, object]]:
    a = r["aggregates"]
    cfg = r["config"]
    per = a["student_output_tok_s"]
    cc = r["server"]["cross_check"]
    return [
        ("endpoint", f"{cfg['base_url']} ({cfg['api']}, model {cfg['model']})"),
        ("load", f"{_load_line(cfg)}, max_tokens {cfg['max_tokens']}{', ignore_eos' if cfg['ignore_eos'] else ''}"),
        ("measured window (s)", a["measured_window_s"]),
        ("requests ok / measured", f"{a['requests_ok']} / {a['requests_measured']}"),
        ("failures (all requests)", a["failures_total"]),
        ("output tok/s (aggregate)", a["output_tok_s"]),
        ("requests/s", a["requests_per_s"]),
        ("goodput requests/s", a["goodput_per_s"]),
        (f"per-{per['unit']} output tok/s p50 / min", f"{_v(per['p50'])} / {_v(per['min'])}"),
        ("tokens estimated", a["output_tokens_estimated"]),
        ("token cross-check", cc["detail"]),
        ("probe loop lag p99 (ms)", r["probe_health"]["loop_lag_ms"]["p99"]),
        ("probe CPU per output token (µs)", r["probe_health"]["cpu_us_per_output_token"]),
        ("GPU source", r["gpu"]["source"] + (f" ({r['gpu']['reason']})" if r["gpu"]["reason"] else "")),
    ]


def markdown(r: Report) -> str:
    v = r["verdict"]
    lines = [f"# Probe report: {v['status'].upper()}", "", f"Started {r['started_at']}, probe {r['probe_version']}, "
             f"schema {r['schema_version']}.", "", "## Verdict", "", "| check | measured | limit | result | detail |",
             "|---|---|---|---|---|"]
    for c in v["checks"]:
        res = {True: "pass", False: "**FAIL**", None: "skipped"}[c["passed"]]
        lines.append(f"| {c['name']} | {_v(c['measured'])} | {_v(c['limit'])} | {res} | {c['detail']} |")
    lines += ["", "## Summary", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_v(val)} |" for k, val in _headline(r)]
    lines += ["", "## Latency (ms)", "", "| metric | " + " | ".join(COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    for name in LATENCIES:
        s = r["aggregates"]["latency_ms"][name]
        lines.append(f"| {name} | " + " | ".join(_v(s[c]) for c in COLS) + " |")
    fails = r["failures"]["by_kind"]
    lines += ["", "## Failures by kind", ""]
    lines += [f"- {k}: {n}" for k, n in fails.items()] or ["- none"]
    ramp = r["load"]["ramp"]
    if ramp:
        lines += ["", f"## Ramp (largest passing: {ramp['largest_passing_students']} students)", "",
                  "| students | ok | failures | TTFT p95 ms | student tok/s p50 | output tok/s | passed |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['students']} | {s['requests_ok']} | {s['failures']} | {_v(s['ttft_p95_ms'])} | "
                  f"{_v(s['student_output_tok_s_p50'])} | {_v(s['output_tok_s'])} | {s['passed']} |"
                  for s in ramp["steps"]]
    lines += ["", "## GPUs", ""]
    gpus = r["gpu"]["gpus"]
    lines += [f"- GPU {g['index']}: mean {_v(g['util_mean_pct_window'])} % over the window, max {_v(g['util_max_pct'])}"
              f" %, memory max {_v(g['mem_used_max_mib'])} MiB" for g in gpus] or ["- none sampled"]
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {d}" for k, d in r["definitions"].items()]
    return "\n".join(lines) + "\n"


_CSS = ("body{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child"
        "{text-align:left}.pass{color:#080}.fail{color:#c00;font-weight:bold}.inconclusive{color:#b60}"
        ".skipped{color:#888}svg{margin:.5em 0}")


def _table(head: list[str], rows: list[list[object]]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple):  # (text, css class)
                cells.append(f'<td class="{cell[1]}">{escape(str(cell[0]))}</td>')
            else:
                cells.append(f"<td>{escape(_v(cell))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _checks_table(r: Report) -> str:
    rows: list[list[object]] = []
    for c in r["verdict"]["checks"]:
        res = {True: ("pass", "pass"), False: ("FAIL", "fail"), None: ("skipped", "skipped")}[c["passed"]]
        rows.append([c["name"], c["measured"], c["limit"], res, c["detail"]])
    return _table(["check", "measured", "limit", "result", "detail"], rows)


def _plots(r: Report) -> str:
    parts = []
    hist = r["latency_histograms_ms"]
    for name, label in (("ttft", "TTFT"), ("itl", "ITL (per chunk)"), ("e2e", "E2E")):
        h = hist[name]
        parts.append(svg.histogram(f"{label} distribution", h["edges"], h["counts"], "ms"))
    ts = r["throughput_series"]
    parts.append(svg.line_chart("Output throughput", [("tok/s", ts["t_s"], ts["output_tok_s"])], "s", "tok/s"))
    srv = r["server"]
    parts.append(svg.line_chart("Server requests (from /metrics)", [
        ("running", srv["t_s"], srv["series"]["vllm:num_requests_running"]),
        ("waiting", srv["t_s"], srv["series"]["vllm:num_requests_waiting"]),
    ], "s", "requests") if srv["available"] else f"<p><em>Server metrics: {escape(srv['reason'] or 'none')}.</em></p>")
    gpus = r["gpu"]["gpus"]
    if gpus:
        parts.append(svg.line_chart("GPU utilisation", [(f"GPU {g['index']}", g["t_s"], g["util_pct"]) for g in gpus],
                                    "s", "%"))
    else:
        parts.append(f"<p><em>GPU: {escape(r['gpu']['source'])} {escape(r['gpu']['reason'])}.</em></p>")
    ph = r["probe_health"]
    parts.append(svg.line_chart("Probe health", [("loop lag max (ms)", ph["t_s"], ph["lag_max_ms"]),
                                                 ("CPU % of a core", ph["t_s"], ph["cpu_pct"])], "s", "ms / %"))
    return "\n".join(parts)


def html(r: Report) -> str:
    v = r["verdict"]
    lat_rows: list[list[object]] = [[n, *(r["aggregates"]["latency_ms"][n][c] for c in COLS)] for n in LATENCIES]
    body = [f"<h1>Probe report: <span class=\"{v['status']}\">{v['status'].upper()}</span></h1>",
            f"<p>Started {escape(r['started_at'])}; probe {escape(r['probe_version'])}; schema "
            f"{r['schema_version']}.</p>", "<h2>Verdict</h2>", _checks_table(r), "<h2>Summary</h2>",
            _table(["figure", "value"], [[k, val] for k, val in _headline(r)]), "<h2>Latency (ms)</h2>",
            _table(["metric", *COLS], lat_rows), "<h2>Failures by kind</h2>",
            _table(["kind", "count"], [[k, n] for k, n in r["failures"]["by_kind"].items()] or [["none", 0]])]
    ramp = r["load"]["ramp"]
    if ramp:
        body += [f"<h2>Ramp: largest passing {ramp['largest_passing_students']} students</h2>",
                 _table(["students", "ok", "failures", "TTFT p95 ms", "student tok/s p50", "output tok/s", "passed"],
                        [[s["students"], s["requests_ok"], s["failures"], s["ttft_p95_ms"],
                          s["student_output_tok_s_p50"], s["output_tok_s"], str(s["passed"])]
                         for s in ramp["steps"]])]
    body += ["<h2>Plots</h2>", _plots(r), "<h2>Definitions</h2>",
             "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(d)}</li>" for k, d in r["definitions"].items())
             + "</ul>"]
    return _page(f"Probe report {v['status']}", "\n".join(body))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _compare_rows(a: Report, b: Report) -> list[tuple[str, object, object]]:
    rows: list[tuple[str, object, object]] = [
        ("verdict", a["verdict"]["status"], b["verdict"]["status"]),
        ("endpoint", a["config"]["base_url"], b["config"]["base_url"]),
        ("api / model", f"{a['config']['api']} / {a['config']['model']}",
         f"{b['config']['api']} / {b['config']['model']}"),
        ("load", _load_line(a["config"]), _load_line(b["config"])),
    ]
    for key in ("requests_ok", "failures_total", "output_tok_s", "requests_per_s", "goodput_per_s"):
        rows.append((key, a["aggregates"][key], b["aggregates"][key]))
    rows.append(("student tok/s p50", a["aggregates"]["student_output_tok_s"]["p50"],
                 b["aggregates"]["student_output_tok_s"]["p50"]))
    for name in ("ttft", "itl", "tpot", "e2e"):
        for p in ("p50", "p95", "p99"):
            rows.append((f"{name} {p} (ms)", a["aggregates"]["latency_ms"][name][p],
                         b["aggregates"]["latency_ms"][name][p]))
    for rep_a, rep_b, label in ((a, b, "GPU util mean % (per GPU)"),):
        rows.append((label, ", ".join(_v(g["util_mean_pct_window"]) for g in rep_a["gpu"]["gpus"]) or "-",
                     ", ".join(_v(g["util_mean_pct_window"]) for g in rep_b["gpu"]["gpus"]) or "-"))
    return rows


def compare_markdown(a: Report, b: Report, name_a: str, name_b: str) -> str:
    lines = ["# Probe comparison", "", f"| figure | {name_a} | {name_b} |", "|---|---|---|"]
    lines += [f"| {k} | {_v(x)} | {_v(y)} |" for k, x, y in _compare_rows(a, b)]
    return "\n".join(lines) + "\n"


def compare_html(a: Report, b: Report, name_a: str, name_b: str) -> str:
    body = ["<h1>Probe comparison</h1>",
            _table(["figure", name_a, name_b], [[k, x, y] for k, x, y in _compare_rows(a, b)]),
            "<table><tr><th>" + escape(name_a) + "</th><th>" + escape(name_b) + "</th></tr><tr><td>"
            + _plots(a) + "</td><td>" + _plots(b) + "</td></tr></table>"]
    return _page("Probe comparison", "\n".join(body))
