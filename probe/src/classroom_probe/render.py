"""Markdown and self-contained HTML renderings of a report.

The HTML is one file: inline CSS and SVG, no script, no external resource, and a content security
policy that forbids both, so it opens the same with no network. A teacher reads the verdict banner
first: status, one sentence, then the checks in plain words with what to change.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from html import escape
from typing import Literal

from classroom_probe import svg
from classroom_probe.config import ConfigRecord
from classroom_probe.report import CheckRecord, Report
from classroom_probe.textfmt import duration, num, sig, value, yes_no

LatencyKey = Literal["ttft", "itl", "itl_per_token", "tpot", "e2e"]
LATENCIES: tuple[tuple[LatencyKey, str], ...] = (
    ("ttft", "Time to first token (TTFT)"), ("itl", "Inter-token latency (ITL), per chunk"),
    ("itl_per_token", "Inter-token latency, per token"), ("tpot", "Time per output token (TPOT)"),
    ("e2e", "End-to-end latency (E2E)"))
COLS = ("p50", "p90", "p95", "p99", "max", "count")
RESULT_WORDS = {"pass": "pass", "fail": "FAIL", "skipped": "skipped", "void": "void"}
KV_NAMES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
HISTOGRAMS: tuple[tuple[Literal["ttft", "itl", "e2e"], str], ...] = (
    ("ttft", "Time to first token"), ("itl", "Inter-token latency (per chunk)"), ("e2e", "End-to-end latency"))
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# --- words shared by every rendering ----------------------------------------------------------------------

def load_line(cfg: ConfigRecord) -> str:
    mode = cfg["mode"]
    if mode == "classroom":
        return (f"classroom, {cfg['students']} students for {num(cfg['duration_s'])} s after "
                f"{num(cfg['warmup_s'])} s warm-up, thinking {num(cfg['think_min_s'])}-{num(cfg['think_max_s'])} s")
    if mode == "batch":
        cap = f", at most {num(cfg['duration_s'])} s" if cfg["duration_s"] else ""
        return f"batch, {num(cfg['requests'])} requests, {num(cfg['concurrency'])} at a time{cap}"
    if mode == "rate":
        arrivals = "Poisson" if cfg["poisson"] else "constant"
        return (f"rate, {num(cfg['rate_rps'])} requests/s ({arrivals}) for {num(cfg['duration_s'])} s, "
                f"at most {num(cfg['concurrency'])} in flight")
    r = cfg["ramp"]
    return (f"ramp, {r['start']} to {r['max']} students in steps of {r['step']}, {num(r['step_duration_s'])} s each "
            f"after {num(cfg['warmup_s'])} s warm-up")


def amount(x: float | None, unit: str) -> str:
    """A value with its unit: 3 significant figures, "1 request" but "2 requests", '-' for none."""
    if x is None:
        return "-"
    text = num(x) if isinstance(x, int) or float(x).is_integer() else sig(x)
    if x == 1 and unit in ("requests", "students"):
        unit = unit[:-1]
    return f"{text} {unit}".strip()


def measured_text(c: CheckRecord) -> str:
    return amount(c["measured"], c["unit"])


def limit_text(c: CheckRecord) -> str:
    if c["limit"] is None:
        return "-"
    return f"{'at most' if c['bound'] == 'max' else 'at least'} {amount(c['limit'], c['unit'])}"


def when(iso: str) -> str:
    """An ISO 8601 time as '2026-11-30 10:09:28 UTC'."""
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if t.utcoffset() == timedelta(0) else "")


def headline(r: Report) -> str:
    """One sentence under the status: what happened, in plain words."""
    v = r["verdict"]
    failed = [c for c in v["checks"] if c["result"] == "fail" and c["kind"] != "probe"]
    void = [c for c in v["checks"] if c["result"] == "void"]
    load = load_line(r["config"])
    if v["status"] == "pass":
        return f"Every check passed under this load: {load}."
    if v["status"] == "fail":
        text = f"{len(failed)} of {len(v['checks'])} checks failed: {', '.join(c['title'] for c in failed)}."
        if void:
            text += (" The probe itself was too busy to time this run exactly, so these results are void: "
                     f"{', '.join(c['title'] for c in void)}.")
        return text
    lag = r["probe_health"]["gate_lag_p99_ms"]
    limit = r["config"]["thresholds"].get("probe_loop_lag_p99_ms_max")
    why = (f"The probe itself was too busy to time this run exactly (loop lag p99 {num(lag)} ms, limit "
           f"{num(limit)} ms), so the run proves neither pass nor fail")
    if void:
        why += f": {', '.join(c['title'] for c in void)} failed, which the probe's slowness can explain"
    else:
        why += ", although every other check passed"
    return why + ". Rerun with more load processes (workers), on a quieter machine or with a lighter load."


def header_rows(r: Report) -> list[tuple[str, str]]:
    cfg = r["config"]
    srv = r["server"]
    software = " ".join(x for x in (srv["software"], srv["version"]) if x) or "version not reported"
    gpu = r["gpu"]
    names: dict[str, int] = {}
    for g in gpu["gpus"]:
        label = g["name"] or f"GPU {g['index']}"
        if g["memory_total_mib"]:
            label += f" ({num(g['memory_total_mib'] / 1024, 0)} GiB)"
        names[label] = names.get(label, 0) + 1
    gpus = ", ".join(f"{n} x {label}" for label, n in names.items())
    if gpus and gpu["driver_version"]:
        gpus += f", driver {gpu['driver_version']}"
    if not gpus:
        gpus = f"none seen ({gpu['source']}{': ' + gpu['reason'] if gpu['reason'] else ''})"
    profile = cfg["profile"]
    if cfg["threshold_overrides"]:
        profile += " with overrides: " + ", ".join(f"{k} = {value(x)}" for k, x in cfg["threshold_overrides"].items())
    return [
        ("Server", f"{cfg['base_url']} ({software}, {cfg['api']} API)"),
        ("Model", cfg["model"]),
        ("Probe host", f"{r['environment']['hostname']} ({num(r['environment']['cpu_count'])} CPUs, "
                       f"{num(r['load']['workers'])} load process{'es' if r['load']['workers'] != 1 else ''})"),
        ("GPUs", gpus),
        ("Load", f"{load_line(cfg)}; max_tokens {cfg['max_tokens']}{', ignore_eos' if cfg['ignore_eos'] else ''}"),
        ("Profile", profile),
        ("Run", f"{when(r['started_at'])}, {duration(r['load']['duration_s'])} of load; probe "
                f"{r['probe_version']}, report schema {r['schema_version']}"),
    ]


def outage_rows(r: Report) -> list[list[str]]:
    """One row per outage window: from, to, length, failed requests, kinds (the run end when still out)."""
    return [[num(w["start_s"], 1), "end of run" if w["end_s"] is None else num(w["end_s"], 1),
             "-" if w["duration_s"] is None else num(w["duration_s"], 1), num(w["failures"]),
             ", ".join(f"{k} {num(n)}" for k, n in w["by_kind"].items()) or "-"]
            for w in r["failures"]["outages"]]


def summary_rows(r: Report) -> list[tuple[str, str]]:
    a = r["aggregates"]
    per = a["student_output_tok_s"]
    cc = r["server"]["cross_check"]
    ph = r["probe_health"]
    return [
        ("Measured window", f"{num(a['measured_window_s'])} s"),
        ("Requests ok / measured", f"{num(a['requests_ok'])} / {num(a['requests_measured'])}"),
        ("Failed requests (all, warm-up included)", num(r["failures"]["total"])),
        ("Output tokens per second (all students)", num(a["output_tok_s"], 1)),
        ("Requests per second", num(a["requests_per_s"], 2)),
        ("Requests per second meeting the SLO (goodput)", num(a["goodput_per_s"], 2)),
        (f"Answer speed per {per['unit']}, median / slowest", f"{sig(per['p50'])} / {sig(per['min'])} tok/s"),
        ("Token counts estimated (server sent no usage)", yes_no(a["output_tokens_estimated"])),
        ("Token cross-check with the server's counter", cc["detail"]),
        ("Probe loop lag p99 (worst process)", f"{num(ph['gate_lag_p99_ms'])} ms"),
        ("Probe CPU per output token", f"{num(ph['cpu_us_per_output_token'])} µs"),
    ]


# --- Markdown -------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(r: Report) -> str:
    v = r["verdict"]
    lines = [f"# Probe report: {v['status'].upper()}", "", headline(r), ""]
    lines += [f"- **{k}**: {_md_cell(x)}" for k, x in header_rows(r)]
    lines += ["", "## Checks", "", "| check | measured | limit | result |", "|---|---|---|---|"]
    for c in v["checks"]:
        lines.append(f"| {_md_cell(c['title'])} (`{c['id']}`) | {measured_text(c)} | {limit_text(c)} | "
                     f"{RESULT_WORDS.get(c['result'], c['result'])} |")
    todo = [c for c in v["checks"] if c["result"] in ("fail", "void")]
    if todo:
        lines += ["", "### What to change", ""]
        lines += [f"- **{c['title']}** (`{c['id']}`): {c['what_to_change']}" for c in todo]
    lines += ["", "## Summary", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(x)} |" for k, x in summary_rows(r)]
    lines += ["", "## Latency (ms)", "", "| metric | " + " | ".join(COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    for key, label in LATENCIES:
        s = r["aggregates"]["latency_ms"][key]
        lines.append(f"| {label} | " + " | ".join(_lat(s, c) for c in COLS) + " |")
    lines += ["", "## Failed requests by kind", ""]
    lines += [f"- {k}: {num(n)}" for k, n in r["failures"]["by_kind"].items()] or ["- none"]
    if r["failures"]["outages"]:
        lines += ["", "## Outages (requests failed and none succeeded)", "",
                  "| from (s) | to (s) | length (s) | failed | kinds |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in outage_rows(r)]
    ramp = r["load"]["ramp"]
    if ramp:
        lines += ["", f"## Ramp: largest class meeting the SLO: {num(ramp['largest_passing_students'])} students", "",
                  "| students | ok | failed | TTFT p95 (ms) | answer speed p50 (tok/s) | output tok/s | SLO met |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['students']} | {num(s['requests_ok'])} | {num(s['failures'])} | {sig(s['ttft_p95_ms'])} | "
                  f"{sig(s['student_output_tok_s_p50'])} | {num(s['output_tok_s'], 1)} | {yes_no(s['passed'])} |"
                  for s in ramp["steps"]]
    lines += ["", "## GPUs", ""]
    lines += [f"- GPU {g['index']} ({g['name'] or 'name unknown'}): mean {num(g['util_mean_pct_window'])} % over the "
              f"window, max {num(g['util_max_pct'])} %, memory max {num(g['mem_used_max_mib'])} of "
              f"{num(g['memory_total_mib'])} MiB" for g in r["gpu"]["gpus"]] or ["- none sampled"]
    if r["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in r["warnings"]]
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {d}" for k, d in r["definitions"].items()]
    return "\n".join(lines) + "\n"


def _lat(s: dict[str, object] | object, col: str) -> str:
    x = s.get(col) if isinstance(s, dict) else None
    if col == "count":
        return num(x if isinstance(x, int) else None)
    return sig(x if isinstance(x, int | float) else None)


# --- HTML -----------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#1f2328;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;width:100%;table-layout:auto}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:right;vertical-align:top;overflow-wrap:break-word}
table.checks{table-layout:fixed}
td:first-child,th:first-child{text-align:left}th{background:#f6f8fa}
.banner{border-radius:8px;padding:.8em 1.2em;margin:.5em 0 1em;border:2px solid}
.banner .status{font-size:2em;font-weight:bold;letter-spacing:.05em}
.banner.pass{background:#dafbe1;border-color:#1a7f37}.banner.fail{background:#ffebe9;border-color:#cf222e}
.banner.inconclusive{background:#fff8c5;border-color:#9a6700}
.meta td:first-child{width:9em;font-weight:bold}.meta td{text-align:left}
.r-pass{color:#1a7f37}.r-fail{color:#cf222e;font-weight:bold}.r-void{color:#9a6700;font-weight:bold}
.r-skipped{color:#6e7781}
.checks td:nth-child(5),.checks th:nth-child(5){text-align:left}
.checks td:nth-child(5){font-size:.92em}code{font-size:.85em;color:#57606a}
details summary{cursor:pointer;color:#0969da}.plots svg{display:block;max-width:100%;height:auto;margin:.8em 0}
.nodata{color:#6e7781}.warn{background:#fff8c5;padding:.4em .8em;border-radius:6px}
.cmp td:nth-child(n+2){white-space:nowrap}.better{color:#1a7f37}.worse{color:#cf222e}
"""


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def table(head: Iterable[str], rows: Iterable[Iterable[object]], cls: str = "") -> str:
    """Cells are text (escaped here); a cell may be a ('text', 'css class') pair."""
    out = [f'<table class="{cls}"><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(_td(c) for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _td(cell: object) -> str:
    if isinstance(cell, tuple):
        return f'<td class="{cell[1]}">{escape(str(cell[0]))}</td>'
    return f"<td>{escape(str(cell))}</td>"


def _checks_html(r: Report) -> str:
    rows = []
    for c in r["verdict"]["checks"]:
        result = c["result"]
        advice = (f'<details{" open" if result in ("fail", "void") else ""}><summary>what to change</summary>'
                  f"{escape(c['what_to_change'])}</details>")
        detail = f'<div><small>{escape(c["detail"])}</small></div>' if c["detail"] else ""
        rows.append(f'<tr id="check-{escape(c["id"])}"><td>{escape(c["title"])}<br><code>{escape(c["id"])}</code></td>'
                    f"<td>{escape(measured_text(c))}</td><td>{escape(limit_text(c))}</td>"
                    f'<td class="r-{escape(result)}">{escape(RESULT_WORDS.get(result, result))}</td>'
                    f"<td>{detail}{advice}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Check", "Measured", "Limit", "Result", "Detail"))
    cols = "".join(f'<col style="width:{w}%">' for w in (27, 12, 15, 8, 38))
    return f'<table class="checks"><colgroup>{cols}</colgroup><tr>{head}</tr>{"".join(rows)}</table>'


def html(r: Report) -> str:
    v = r["verdict"]
    status = v["status"]
    body = [f'<div class="banner {status}"><div class="status">{status.upper()}</div>'
            f"<div>{escape(headline(r))}</div></div>",
            '<table class="meta">' + "".join(f"<tr><td>{escape(k)}</td><td>{escape(x)}</td></tr>"
                                             for k, x in header_rows(r)) + "</table>"]
    body += [f'<p class="warn">{escape(w)}</p>' for w in r["warnings"]]
    body += ["<h2>Checks</h2>", _checks_html(r), "<h2>Summary</h2>",
             table(["Figure", "Value"], summary_rows(r)), "<h2>Latency (ms)</h2>",
             table(["Metric", *COLS], [[label, *(_lat(r["aggregates"]["latency_ms"][k], c) for c in COLS)]
                                       for k, label in LATENCIES]),
             "<h2>Failed requests by kind</h2>",
             table(["Kind", "Requests"], [[k, num(n)] for k, n in r["failures"]["by_kind"].items()] or [["none", "0"]])]
    if r["failures"]["outages"]:
        body += ["<h2>Outages (requests failed and none succeeded)</h2>",
                 table(["From (s)", "To (s)", "Length (s)", "Failed", "Kinds"], outage_rows(r))]
    ramp = r["load"]["ramp"]
    if ramp:
        body += [f"<h2>Ramp: largest class meeting the SLO: {num(ramp['largest_passing_students'])} students</h2>",
                 table(["Students", "OK", "Failed", "TTFT p95 (ms)", "Answer speed p50 (tok/s)", "Output tok/s",
                        "SLO met"],
                       [[num(s["students"]), num(s["requests_ok"]), num(s["failures"]), sig(s["ttft_p95_ms"]),
                         sig(s["student_output_tok_s_p50"]), num(s["output_tok_s"], 1),
                         (yes_no(s["passed"]), "r-pass" if s["passed"] else "r-fail")] for s in ramp["steps"]])]
    body += ['<h2>Plots</h2><div class="plots">', *plots(r), "</div>", "<h2>Definitions</h2>",
             "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(d)}</li>" for k, d in r["definitions"].items())
             + "</ul>"]
    return page(f"Probe report: {status}", "\n".join(body))


# --- plots ----------------------------------------------------------------------------------------------

def _limit(r: Report, key: str) -> float | None:
    x = r["config"]["thresholds"].get(key)
    return None if x is None else float(x)


def warmup_decor(r: Report) -> svg.Decor:
    ramp = r["load"]["ramp"]
    texts = [f"{s['students']} students" for s in ramp["steps"]] if ramp else []
    label = "warm-up (each ramp step)" if ramp else "warm-up"
    return svg.Decor(spans=[(a, b) for a, b in r["load"]["warmups_s"]], span_label=label, span_texts=texts)


def _timeline(r: Report, title: str, series: list[svg.Series], ylabel: str, decor: svg.Decor | None = None) -> str:
    """A chart over the run's time, from its start to its end, warm-up shaded."""
    return svg.line_chart(title, series, xlabel="time since start (s)", ylabel=ylabel,
                          decor=decor or warmup_decor(r), x_range=(0.0, max(1.0, r["load"]["duration_s"])),
                          counts=ylabel in ("requests", "failures per second"))


def plots(r: Report) -> list[str]:
    out = _latency_plots(r) + _time_plots(r)
    if r["load"]["ramp"]:
        out = capacity_plots(r) + out
    return out


def _latency_plots(r: Report) -> list[str]:
    out = []
    lat = r["aggregates"]["latency_ms"]
    ttft_max = _limit(r, "ttft_p95_ms_max")
    for key, label in HISTOGRAMS:
        h = r["latency_histograms_ms"][key]
        d = svg.Decor()
        p95 = lat[key]["p95"]
        if p95 is not None:
            d.marks.append(svg.Line(p95, f"p95: {sig(p95)} ms", svg.PALETTE[1]))
        if key == "ttft" and ttft_max is not None:
            d.marks.append(svg.Line(ttft_max, f"SLO: p95 at most {num(ttft_max)} ms", svg.LIMIT_COLOUR))
        out.append(svg.histogram(f"{label}: distribution", h["edges"], h["counts"], xlabel=f"{label} (ms)",
                                 ylabel="requests" if key != "itl" else "gaps", decor=d,
                                 label="successful measured requests" if key != "itl" else "chunk gaps"))
    return out


def _time_plots(r: Report) -> list[str]:
    ts = r["throughput_series"]
    srv = r["server"]
    d = warmup_decor
    out = [_timeline(r, "Output throughput", [svg.Series("output tok/s", ts["t_s"], ts["output_tok_s"])],
                     "tokens per second")]
    inflight = [svg.Series("in flight at the probe", ts["t_s"], ts["in_flight"])]
    if srv["available"]:
        inflight += [svg.Series("running (server)", srv["t_s"], srv["series"]["vllm:num_requests_running"]),
                     svg.Series("waiting (server)", srv["t_s"], srv["series"]["vllm:num_requests_waiting"])]
    out.append(_timeline(r, "Requests in flight", inflight, "requests"))
    fs = r["failures"]["series"]
    if r["failures"]["total"] and fs["by_kind"]:
        out.append(_timeline(r, "Failed requests by kind", [svg.Series(k, fs["t_s"], v)
                                                             for k, v in fs["by_kind"].items()], "failures per second"))
    else:
        out.append('<p class="nodata"><em>Failed requests by kind: no request failed.</em></p>')
    if srv["available"]:
        kv = next((srv["series"][n] for n in KV_NAMES if any(x is not None for x in srv["series"].get(n, []))), None)
        if kv is not None:
            dec = d(r)
            dec.limits.append(svg.Line(100.0, "cache full", svg.LIMIT_COLOUR))
            out.append(_timeline(r, "KV cache usage (server)", [svg.Series(
                "KV cache used", srv["t_s"], [None if x is None else round(100 * x, 2) for x in kv])],
                "% of the KV cache", dec))
    else:
        out.append(f'<p class="nodata"><em>Server metrics: {escape(srv["reason"] or "not scraped")}.</em></p>')
    out += _gpu_plots(r)
    ph = r["probe_health"]
    dec = d(r)
    lag_max = _limit(r, "probe_loop_lag_p99_ms_max")
    if lag_max is not None:
        dec.limits.append(svg.Line(lag_max, f"limit on the p99: {num(lag_max)} ms"))
    out.append(_timeline(r, "Probe loop lag", [svg.Series("longest wait each second", ph["t_s"], ph["lag_max_ms"])],
                         "ms", dec))
    out.append(_timeline(r, "Probe CPU", [svg.Series("probe processes", ph["t_s"], ph["cpu_pct"])],
                         "% of one core"))
    return out


def _gpu_plots(r: Report) -> list[str]:
    g = r["gpu"]
    if not g["gpus"] or not any(x["t_s"] for x in g["gpus"]):
        return [f'<p class="nodata"><em>GPUs: {escape(g["source"])}'
                f'{": " + escape(g["reason"]) if g["reason"] else ""}.</em></p>']
    util = [svg.Series(f"GPU {x['index']}", x["t_s"], x["util_pct"]) for x in g["gpus"]]
    floor = _limit(r, "gpu_util_mean_min_pct")
    dec = warmup_decor(r)
    if floor is not None:
        dec.limits.append(svg.Line(floor, f"floor of each GPU's mean: {num(floor)} %"))
    mem = [svg.Series(f"GPU {x['index']}", x["t_s"], [None if m is None else round(m / 1024, 2)
                                                      for m in x["mem_used_mib"]]) for x in g["gpus"]]
    mdec = warmup_decor(r)
    for total in sorted({x["memory_total_mib"] for x in g["gpus"] if x["memory_total_mib"]}):
        mdec.limits.append(svg.Line(round(total / 1024, 2), f"memory of a card: {num(total / 1024, 1)} GiB",
                                    svg.PALETTE[7]))
    return [_timeline(r, "GPU utilisation", util, "%", dec), _timeline(r, "GPU memory used", mem, "GiB", mdec)]


def capacity_plots(r: Report) -> list[str]:
    ramp = r["load"]["ramp"]
    if not ramp:
        return []
    steps = ramp["steps"]
    xs = [float(s["students"]) for s in steps]
    best = ramp["largest_passing_students"]
    span = (min(xs), max(float(r["config"]["ramp"]["max"]), *xs))
    out = []
    curves: tuple[tuple[Literal["ttft_p95_ms", "student_output_tok_s_p50"], str, str, str, str], ...] = (
        ("ttft_p95_ms", "Capacity: wait for the first word", "TTFT p95 (ms)", "ttft_p95_ms_max", "at most {} ms"),
        ("student_output_tok_s_p50", "Capacity: answer speed per student", "tok/s, median over students",
         "student_output_tok_s_min", "at least {} tok/s"))
    for key, title, unit, limit_key, words in curves:
        d = svg.Decor()
        limit = _limit(r, limit_key)
        if limit is not None:
            d.limits.append(svg.Line(limit, "SLO: " + words.format(num(limit))))
        if best:
            d.marks.append(svg.Line(float(best), f"largest passing: {best} students", svg.MARK_COLOUR))
        ys = [s[key] for s in steps]
        out.append(svg.line_chart(title, [svg.Series(unit, xs, ys, points=True)], xlabel="students", ylabel=unit,
                                  decor=d, x_range=span))
    return out
