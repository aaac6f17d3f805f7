"""The report document (schema documented in probe/README.md, "Report JSON schema")."""

import os
import platform
import socket
import sys
from typing import TYPE_CHECKING

import aiohttp

from classroom_probe import SCHEMA_VERSION, __version__
from classroom_probe.gate import Verdict
from classroom_probe.server_metrics import WATCHED

if TYPE_CHECKING:
    from classroom_probe.runner import RunData

NS = 1e9
METRIC_DEFINITIONS = {
    "ttft": "first content-bearing chunk minus request start; start is stamped immediately before the request "
            "is handed to the HTTP client (connection set-up included when no idle keep-alive connection exists; "
            "client-side queueing excluded)",
    "itl": "gap between consecutive content-bearing chunks, pooled over successful measured requests (per chunk)",
    "itl_per_token": "each chunk gap divided by the tokens it carried (from per-chunk usage), once per token",
    "tpot": "(e2e - ttft) / (output_tokens - 1) per request with 2+ tokens",
    "e2e": "last event of the stream minus request start",
    "output_tok_s": "output tokens of successful measured requests over the measured window",
    "student_output_tok_s": "per student: sum of (output_tokens - 1) over sum of (e2e - ttft) of their successful "
                            "measured requests; the gate uses the p50 over students",
    "goodput": "successful measured requests meeting the TTFT and streaming-speed SLO, per second of window",
    "measured_window": "from the end of warm-up to the end of the last measured request",
    "output_tokens": "usage.completion_tokens (OpenAI) or eval_count (Ollama); else content chunks, marked estimated",
}


def _t(ns: int, origin: int) -> float:
    return round((ns - origin) / NS, 3)


def environment() -> dict[str, object]:
    return {
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
    }


def build_report(data: "RunData", verdict: Verdict) -> dict[str, object]:
    o = data.origin_ns
    agg = data.aggregator
    aggregates = agg.summary()
    health = data.health.series
    tokens_all = sum(s.aggregator.all_tokens for s in data.ramp_steps) if data.ramp_steps else agg.all_tokens
    report: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "probe_version": __version__,
        "started_at": data.started_at.isoformat(),
        "finished_at": data.finished_at.isoformat(),
        "config": data.config.to_json(),
        "environment": environment(),
        "served_models": data.served_models,
        "definitions": METRIC_DEFINITIONS,
        "load": {
            "mode": data.config.mode,
            "duration_s": _t(data.load_end_ns, o),
            "window_start_s": None if agg.window_start_ns is None else _t(agg.window_start_ns, o),
            "window_end_s": None if agg.window_end_ns is None else _t(agg.window_end_ns, o),
            "requests_issued": data.live.done,
            "cancelled_at_drain": data.cancelled_at_drain,
            "dispatch_lag_ms": None if data.dispatch_lag_ms is None else data.dispatch_lag_ms.summary(),
            "ramp": _ramp(data),
        },
        "aggregates": aggregates,
        "latency_histograms_ms": {
            "ttft": agg.ttft.histogram(30, 1e-6),
            "itl": agg.itl.histogram(30, 1e-6),
            "e2e": agg.e2e.histogram(30, 1e-6),
        },
        "failures": {
            "by_kind": dict(sorted(data.live.failures.items())),
            "total": data.live.failed,
        },
        "gpu": _gpu(data),
        "server": _server(data, tokens_all),
        "throughput_series": {
            "t_s": [_t(t, o) for t, *_ in data.throughput],
            "output_tok_s": [r for _, r, *_ in data.throughput],
            "requests_done": [d for _, _, d, _, _ in data.throughput],
            "failures": [f for *_, f, _ in data.throughput],
            "in_flight": [i for *_, i in data.throughput],
        },
        "probe_health": {
            "loop_lag_ms": health.lag_ms.summary(),
            "t_s": [_t(t, o) for t, _, _ in health.per_second],
            "lag_max_ms": [lag for _, lag, _ in health.per_second],
            "cpu_pct": [c for _, _, c in health.per_second],
            "cpu_s": round(health.cpu_s, 3),
            "wall_s": round(health.wall_s, 3),
            "cpu_us_per_output_token": round(health.cpu_s * 1e6 / tokens_all, 2) if tokens_all else None,
        },
        "verdict": verdict.to_json(),
    }
    return report


def _ramp(data: "RunData") -> dict[str, object] | None:
    if not data.ramp_steps:
        return None
    rows = []
    for s in data.ramp_steps:
        summ = s.aggregator.summary()
        lat = summ["latency_ms"]
        assert isinstance(lat, dict)
        per = summ["student_output_tok_s"]
        assert isinstance(per, dict)
        rows.append({
            "students": s.students,
            "requests_ok": s.aggregator.ok,
            "failures": sum(s.aggregator.failures.values()),
            "ttft_p95_ms": lat["ttft"]["p95"],
            "student_output_tok_s_p50": per["p50"],
            "output_tok_s": summ["output_tok_s"],
            "passed": s.verdict.status == "pass",
            "checks": [c.to_json() for c in s.verdict.checks if c.passed is not None],
        })
    return {"largest_passing_students": data.ramp_largest, "steps": rows}


def _gpu(data: "RunData") -> dict[str, object]:
    o = data.origin_ns
    series = data.gpu.series
    agg = data.aggregator
    means = series.means(agg.window_start_ns, agg.window_end_ns or data.load_end_ns)
    per_gpu: dict[int, dict[str, list[float | None]]] = {}
    times: dict[int, list[float]] = {}
    for s in series.samples:
        g = per_gpu.setdefault(s.index, {"util_pct": [], "mem_used_mib": []})
        g["util_pct"].append(s.util_pct)
        g["mem_used_mib"].append(s.mem_used_mib)
        times.setdefault(s.index, []).append(_t(s.t_ns, o))
    gpus = []
    for index, g in sorted(per_gpu.items()):
        utils = [u for u in g["util_pct"] if u is not None]
        mems = [m for m in g["mem_used_mib"] if m is not None]
        gpus.append({
            "index": index,
            "util_mean_pct_window": None if index not in means else round(means[index], 2),
            "util_max_pct": max(utils) if utils else None,
            "mem_used_max_mib": max(mems) if mems else None,
            "t_s": times[index],
            "util_pct": g["util_pct"],
            "mem_used_mib": g["mem_used_mib"],
        })
    return {"source": series.source, "reason": series.reason, "gpus": gpus}


def _server(data: "RunData", probe_tokens: int) -> dict[str, object]:
    o = data.origin_ns
    s = data.scraper.series
    series: dict[str, list[float | None]] = {name: [] for name in WATCHED}
    for _, values in s.samples:
        for name in WATCHED:
            series[name].append(values.get(name))
    return {
        "metrics_url": s.url,
        "available": s.available,
        "reason": s.reason,
        "t_s": [_t(t, o) for t, _ in s.samples],
        "series": series,
        "cross_check": cross_check(s.first, s.last, probe_tokens),
    }


def cross_check(first: dict[str, float] | None, last: dict[str, float] | None, probe_tokens: int,
                tolerance: float = 0.01) -> dict[str, object]:
    """Tokens the probe counted (all requests) against the delta of vllm:generation_tokens_total."""
    name = "vllm:generation_tokens_total"
    if not first or not last or name not in first or name not in last:
        return {"available": False, "probe_tokens": probe_tokens, "server_tokens": None, "match": None,
                "detail": "no vllm:generation_tokens_total before and after the load"}
    delta = round(last[name] - first[name])
    diff = probe_tokens - delta
    match = abs(diff) <= max(1.0, tolerance * max(delta, probe_tokens))
    within = "within" if match else "beyond"
    detail = "agrees" if diff == 0 else f"probe counted {diff:+d} tokens vs the server ({within} 1 %)"
    if not match:
        detail += "; another client, a cancelled request or a restarted server can explain a mismatch"
    return {"available": True, "probe_tokens": probe_tokens, "server_tokens": delta, "difference": diff,
            "match": match, "detail": detail}
