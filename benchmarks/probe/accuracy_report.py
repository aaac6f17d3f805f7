"""Turns the accuracy runs into medians over repeats, the issue's target checks, and a Markdown table."""

from __future__ import annotations

import statistics
from typing import Any

# (summary key, path into one run's result row)
METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ttft_err_p50_ms", ("ttft_error_ms", "p50")),
    ("ttft_err_p95_ms", ("ttft_error_ms", "p95")),
    ("ttft_err_after_first_wave_p95_ms", ("ttft_error_after_first_wave_ms", "p95")),
    ("itl_err_p50_ms", ("itl_error_ms", "p50")),
    ("itl_err_p95_ms", ("itl_error_ms", "p95")),
    ("send_lag_p50_ms", ("send_lag_ms", "p50")),
    ("cpu_us_per_token", ("cpu_us_per_token",)),
    ("server_cpu_us_per_token", ("server_cpu_us_per_token",)),
    ("probe_loop_lag_p99_ms", ("extra", "probe_loop_lag_ms", "p99")),
)


def _get(row: dict[str, Any], path: tuple[str, ...]) -> float | None:
    cur: Any = row
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return float(cur) if isinstance(cur, (int, float)) else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (client, streams): the median of each metric over repeats, and its min and max."""
    out: list[dict[str, Any]] = []
    keys = sorted({(r["concurrency"], r["tool"]) for r in rows}, key=lambda k: (k[0], k[1] != "vllm", k[1]))
    for conc, tool in keys:
        mine = [r for r in rows if r["tool"] == tool and r["concurrency"] == conc]
        entry: dict[str, Any] = {
            "streams": conc,
            "tool": tool,
            "repeats": len(mine),
            "matched": sum(r["matched"] for r in mine),
            "sent": sum(r["requests_sent"] for r in mine),
            "client_failures": sum(r["client_failures"] for r in mine),
            "loadavg_1min": [r["loadavg_before"][0] for r in mine] + [mine[-1]["loadavg_after"][0]],
        }
        for name, path in METRICS:
            vals = [v for v in (_get(r, path) for r in mine) if v is not None]
            entry[name] = round(statistics.median(vals), 3) if vals else None
            entry[name + "_range"] = [round(min(vals), 3), round(max(vals), 3)] if vals else None
        out.append(entry)
    return out


def targets(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, on medians, against the vllm bench serve runs of the same script."""
    checks: list[dict[str, Any]] = []
    by = {(s["tool"], s["streams"]): s for s in summary}
    for conc in sorted({s["streams"] for s in summary}):
        ref = by.get(("vllm", conc))
        for tool in ("probe", "probe-cli"):
            p = by.get((tool, conc))
            if ref is None or p is None:
                continue
            for name in ("ttft_err_p50_ms", "ttft_err_p95_ms", "itl_err_p50_ms", "itl_err_p95_ms"):
                mine, theirs = p[name], ref[name]
                ok = None if mine is None or theirs is None else abs(mine) <= abs(theirs) / 2
                checks.append({"tool": tool, "streams": conc, "check": f"{name}: |probe| <= |vllm| / 2",
                               "probe": mine, "vllm": theirs, "passed": ok})  # fmt: skip
            mine, theirs = p["cpu_us_per_token"], ref["cpu_us_per_token"]
            ok = None if mine is None or theirs is None else mine <= theirs
            checks.append({"tool": tool, "streams": conc, "check": "cpu_us_per_token: probe <= vllm",
                           "probe": mine, "vllm": theirs, "passed": ok})  # fmt: skip
            if conc == 1:
                v = p["ttft_err_p95_ms"]
                checks.append({"tool": tool, "streams": 1, "check": "ttft_err_p95_ms < 1",
                               "probe": v, "vllm": None, "passed": None if v is None else abs(v) < 1.0})  # fmt: skip
    return checks


def _f(v: float | None, signed: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.2f}" if signed else f"{v:.1f}"


def _rng(entry: dict[str, Any], name: str, signed: bool = True) -> str:
    r = entry.get(name + "_range")
    if not r or entry["repeats"] < 2:
        return _f(entry[name], signed)
    return f"{_f(entry[name], signed)} ({_f(r[0], signed)}…{_f(r[1], signed)})"


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "| streams | client | matched / sent | TTFT err p50 | TTFT err p95 | TTFT err p95 after 1st wave "
        "| ITL err p50 | ITL err p95 | CPU µs/token | probe loop lag p99 | load avg 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        loads = s["loadavg_1min"]
        lines.append(
            f"| {s['streams']} | {s['tool']} | {s['matched']} / {s['sent']} "
            f"| {_rng(s, 'ttft_err_p50_ms')} | {_rng(s, 'ttft_err_p95_ms')} "
            f"| {_rng(s, 'ttft_err_after_first_wave_p95_ms')} "
            f"| {_rng(s, 'itl_err_p50_ms')} | {_rng(s, 'itl_err_p95_ms')} "
            f"| {_rng(s, 'cpu_us_per_token', signed=False)} | {_f(s['probe_loop_lag_p99_ms'], signed=False)} "
            f"| {min(loads):.1f} to {max(loads):.1f} |"
        )
    lines.append("")
    lines.append(
        f"Errors in ms, client minus server truth; median over {meta['repeat']} repeat(s), range in brackets. "
        f"Server: TTFT {meta['ttft_ms']} ms and ITL {meta['itl_ms']} ms nominal, {meta['output_len']} output "
        f"tokens per request."
    )
    return "\n".join(lines) + "\n"
