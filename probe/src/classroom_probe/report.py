"""The report: a typed, versioned document built from the measurements and the verdict.

`Report` and its parts are TypedDicts: report.json is exactly such a dict, every renderer and
`compare` read it through these types, and `report_schema()` gives its JSON schema
(probe/report.schema.json). Times in series are seconds since the load started; latencies are
milliseconds. probe/README.md ("Report JSON schema") describes every key.
"""

import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast

import aiohttp

from classroom_probe import SCHEMA_VERSION, __version__
from classroom_probe.config import Config, ConfigRecord
from classroom_probe.gate import Verdict
from classroom_probe.gpu import GpuSeries
from classroom_probe.health import HealthSeries
from classroom_probe.metrics import Aggregates, Aggregator, Timeline, outages
from classroom_probe.modelcheck import ServerVersion
from classroom_probe.records import LiveSnapshot, server_caused
from classroom_probe.schema import DRAFT, type_schema
from classroom_probe.server_metrics import WATCHED, ServerSeries
from classroom_probe.stats import Histogram, Reservoir, Summary

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
    "loop_lag": "how long work that became ready waited for the probe's event loop, as a share of the run's time: "
                "the p99 is the wait that 99 % of the run's time stayed under (worst load process for the gate)",
}


class CheckRecord(TypedDict):
    id: str
    name: str  # the same as id (kept for readers of schema 1)
    title: str
    kind: str
    unit: str
    bound: str
    measured: float | None
    limit: float | None
    passed: bool | None
    result: str
    detail: str
    what_to_change: str


class VerdictRecord(TypedDict):
    status: str
    checks: list[CheckRecord]


class RampStepRecord(TypedDict):
    students: int
    requests_ok: int
    failures: int
    ttft_p95_ms: float | None
    student_output_tok_s_p50: float | None
    output_tok_s: float | None
    passed: bool
    checks: list[CheckRecord]
    start_s: float
    warm_end_s: float
    end_s: float


class RampRecord(TypedDict):
    largest_passing_students: int | None
    steps: list[RampStepRecord]


class LoadRecord(TypedDict):
    mode: str
    duration_s: float
    window_start_s: float | None
    window_end_s: float | None
    requests_issued: int
    cancelled_at_drain: int
    dispatch_lag_ms: Summary | None
    ramp: RampRecord | None
    warmups_s: list[list[float]]
    workers: int


class LatencyHistograms(TypedDict):
    ttft: Histogram
    itl: Histogram
    e2e: Histogram


class FailureSeries(TypedDict):
    t_s: list[float]
    by_kind: dict[str, list[int]]


class OutageRecord(TypedDict):
    start_s: float
    end_s: float | None
    duration_s: float | None
    failures: int
    by_kind: dict[str, int]


class FailuresRecord(TypedDict):
    by_kind: dict[str, int]
    total: int
    server_caused: int
    series: FailureSeries
    outages: list[OutageRecord]


class GpuRecord(TypedDict):
    index: int
    name: str | None
    memory_total_mib: float | None
    util_mean_pct_window: float | None
    util_max_pct: float | None
    mem_used_max_mib: float | None
    t_s: list[float]
    util_pct: list[float | None]
    mem_used_mib: list[float | None]


class GpusRecord(TypedDict):
    source: str
    reason: str
    driver_version: str | None
    gpus: list[GpuRecord]


class CrossCheck(TypedDict):
    available: bool
    probe_tokens: int
    server_tokens: int | None
    difference: int | None
    match: bool | None
    detail: str


class ServerRecord(TypedDict):
    metrics_url: str | None
    available: bool
    reason: str
    software: str | None
    version: str | None
    version_reason: str
    t_s: list[float]
    series: dict[str, list[float | None]]
    cross_check: CrossCheck


class ThroughputRecord(TypedDict):
    t_s: list[float]
    output_tok_s: list[float]
    requests_done: list[int]
    failures: list[int]
    in_flight: list[int]


class LagSummary(TypedDict):
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float
    busy_pct: float | None


class WorkerHealthRecord(TypedDict):
    worker: int
    lag_p99_ms: float | None
    lag_max_ms: float
    cpu_s: float


class ProbeHealthRecord(TypedDict):
    source: str
    loop_lag_ms: LagSummary
    gate_lag_p99_ms: float | None
    t_s: list[float]
    lag_max_ms: list[float]
    cpu_pct: list[float]
    cpu_s: float
    wall_s: float
    cpu_us_per_output_token: float | None
    workers: list[WorkerHealthRecord]


class EnvironmentRecord(TypedDict):
    hostname: str
    python: str
    platform: str
    aiohttp: str
    cpu_count: int | None
    pid: int


class Report(TypedDict):
    schema_version: int
    probe_version: str
    started_at: str
    finished_at: str
    config: ConfigRecord
    environment: EnvironmentRecord
    served_models: list[str]
    definitions: dict[str, str]
    load: LoadRecord
    aggregates: Aggregates
    latency_histograms_ms: LatencyHistograms
    failures: FailuresRecord
    gpu: GpusRecord
    server: ServerRecord
    throughput_series: ThroughputRecord
    probe_health: ProbeHealthRecord
    verdict: VerdictRecord
    warnings: list[str]


@dataclass(slots=True)
class RampStep:
    students: int
    aggregator: Aggregator
    verdict: Verdict
    cancelled: int
    start_ns: int
    warm_end_ns: int
    end_ns: int


@dataclass(slots=True)
class Measurements:
    """Everything measured, as the report builder takes it."""

    config: Config
    started_at: datetime
    finished_at: datetime
    origin_ns: int
    load_end_ns: int
    aggregator: Aggregator
    totals: LiveSnapshot
    gpu: GpuSeries
    server: ServerSeries
    version: ServerVersion
    health: HealthSeries
    timeline: Timeline
    served_models: list[str]
    workers: int
    cancelled_at_drain: int = 0
    dispatch_lag_ms: Reservoir | None = None
    ramp_steps: list[RampStep] = field(default_factory=list)
    ramp_largest: int | None = None
    warmups: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def tokens_all(self) -> int:
        """Tokens counted over every request of the run (warm-up, failed and every ramp step included)."""
        if self.ramp_steps:
            return sum(s.aggregator.all_tokens for s in self.ramp_steps)
        return self.aggregator.all_tokens


def _t(ns: int, origin: int) -> float:
    return round((ns - origin) / NS, 3)


def environment() -> EnvironmentRecord:
    return {"hostname": socket.gethostname(), "python": sys.version.split()[0], "platform": platform.platform(),
            "aiohttp": aiohttp.__version__, "cpu_count": os.cpu_count(), "pid": os.getpid()}


def checks_json(verdict: Verdict) -> list[CheckRecord]:
    return [cast(CheckRecord, c.to_json()) for c in verdict.checks]


def build_report(m: Measurements, verdict: Verdict) -> Report:
    o = m.origin_ns
    agg = m.aggregator
    tl = m.timeline
    return {
        "schema_version": SCHEMA_VERSION,
        "probe_version": __version__,
        "started_at": m.started_at.isoformat(),
        "finished_at": m.finished_at.isoformat(),
        "config": m.config.to_json(),
        "environment": environment(),
        "served_models": m.served_models,
        "definitions": METRIC_DEFINITIONS,
        "load": {
            "mode": m.config.mode,
            "duration_s": _t(m.load_end_ns, o),
            "window_start_s": None if agg.window_start_ns is None else _t(agg.window_start_ns, o),
            "window_end_s": None if agg.window_end_ns is None else _t(agg.window_end_ns, o),
            "requests_issued": m.totals.done,
            "cancelled_at_drain": m.cancelled_at_drain,
            "dispatch_lag_ms": None if m.dispatch_lag_ms is None else m.dispatch_lag_ms.summary(),
            "ramp": _ramp(m),
            "warmups_s": [[_t(a, o), _t(b, o)] for a, b in m.warmups if b > a],
            "workers": m.workers,
        },
        "aggregates": agg.summary(),
        "latency_histograms_ms": {"ttft": agg.ttft.histogram(30, 1e-6), "itl": agg.itl.histogram(30, 1e-6),
                                  "e2e": agg.e2e.histogram(30, 1e-6)},
        "failures": {
            "by_kind": dict(sorted(m.totals.failures.items())),
            "total": m.totals.failed,
            "server_caused": server_caused(m.totals.failures),
            "series": {"t_s": [_t(t, o) for t in tl.t_ns], "by_kind": dict(sorted(tl.new_failures.items()))},
            "outages": [
                {"start_s": _t(w.start_ns, o), "end_s": None if w.end_ns is None else _t(w.end_ns, o),
                 "duration_s": None if w.end_ns is None else round((w.end_ns - w.start_ns) / 1e9, 1),
                 "failures": w.failures, "by_kind": w.by_kind}
                for w in outages(tl)
            ],
        },
        "gpu": _gpu(m),
        "server": _server(m),
        "throughput_series": {"t_s": [_t(t, o) for t in tl.t_ns], "output_tok_s": tl.output_tok_s,
                              "requests_done": tl.requests_done, "failures": tl.failures, "in_flight": tl.in_flight},
        "probe_health": _health(m),
        "verdict": {"status": verdict.status, "checks": checks_json(verdict)},
        "warnings": m.warnings,
    }


def _health(m: Measurements) -> ProbeHealthRecord:
    h = m.health
    o = m.origin_ns
    busy = h.lag.busy_fraction() if h.ticks_ms is None else None
    tokens = m.tokens_all
    return {
        "source": h.source,
        "loop_lag_ms": {"p50": h.lag_ms(50), "p90": h.lag_ms(90), "p95": h.lag_ms(95), "p99": h.lag_ms(99),
                        "max": h.lag_max_ms, "busy_pct": None if busy is None else round(100 * busy, 2)},
        "gate_lag_p99_ms": h.gate_lag_p99_ms(),
        "t_s": [_t(t, o) for t, _, _ in h.per_second],
        "lag_max_ms": [lag for _, lag, _ in h.per_second],
        "cpu_pct": [c for _, _, c in h.per_second],
        "cpu_s": round(h.cpu_s, 3),
        "wall_s": round(h.wall_s, 3),
        "cpu_us_per_output_token": round(h.cpu_s * 1e6 / tokens, 2) if tokens else None,
        "workers": [{"worker": w.worker, "lag_p99_ms": w.lag_p99_ms, "lag_max_ms": w.lag_max_ms, "cpu_s": w.cpu_s}
                    for w in h.workers],
    }


def _ramp(m: Measurements) -> RampRecord | None:
    if not m.ramp_steps:
        return None
    o = m.origin_ns
    rows: list[RampStepRecord] = []
    for s in m.ramp_steps:
        summ = s.aggregator.summary()
        rows.append({
            "students": s.students,
            "requests_ok": s.aggregator.ok,
            "failures": sum(s.aggregator.failures.values()),
            "ttft_p95_ms": summ["latency_ms"]["ttft"]["p95"],
            "student_output_tok_s_p50": summ["student_output_tok_s"]["p50"],
            "output_tok_s": summ["output_tok_s"],
            "passed": s.verdict.status == "pass",
            "checks": [c for c in checks_json(s.verdict) if c["passed"] is not None],
            "start_s": _t(s.start_ns, o),
            "warm_end_s": _t(s.warm_end_ns, o),
            "end_s": _t(s.end_ns, o),
        })
    return {"largest_passing_students": m.ramp_largest, "steps": rows}


def _gpu(m: Measurements) -> GpusRecord:
    o = m.origin_ns
    series = m.gpu
    agg = m.aggregator
    means = series.means(agg.window_start_ns, agg.window_end_ns or m.load_end_ns)
    info = {g.index: g for g in series.gpus}
    per_gpu: dict[int, tuple[list[float], list[float | None], list[float | None]]] = {}
    for s in series.samples:
        t, util, mem = per_gpu.setdefault(s.index, ([], [], []))
        t.append(_t(s.t_ns, o))
        util.append(s.util_pct)
        mem.append(s.mem_used_mib)
    gpus: list[GpuRecord] = []
    for index in sorted(set(per_gpu) | set(info)):
        t, util, mem = per_gpu.get(index, ([], [], []))
        utils = [u for u in util if u is not None]
        mems = [x for x in mem if x is not None]
        gi = info.get(index)
        gpus.append({
            "index": index,
            "name": gi.name if gi else None,
            "memory_total_mib": gi.memory_total_mib if gi else None,
            "util_mean_pct_window": None if index not in means else round(means[index], 2),
            "util_max_pct": max(utils) if utils else None,
            "mem_used_max_mib": max(mems) if mems else None,
            "t_s": t,
            "util_pct": util,
            "mem_used_mib": mem,
        })
    return {"source": series.source, "reason": series.reason, "driver_version": series.driver_version, "gpus": gpus}


def _server(m: Measurements) -> ServerRecord:
    o = m.origin_ns
    s = m.server
    series: dict[str, list[float | None]] = {name: [] for name in WATCHED}
    for _, values in s.samples:
        for name in WATCHED:
            series[name].append(values.get(name))
    return {
        "metrics_url": s.url,
        "available": s.available,
        "reason": s.reason,
        "software": m.version.software,
        "version": m.version.version,
        "version_reason": m.version.reason,
        "t_s": [_t(t, o) for t, _ in s.samples],
        "series": series,
        "cross_check": cross_check(s.first, s.last, m.tokens_all),
    }


def cross_check(first: dict[str, float] | None, last: dict[str, float] | None, probe_tokens: int,
                tolerance: float = 0.01) -> CrossCheck:
    """Tokens the probe counted (all requests) against the delta of vllm:generation_tokens_total."""
    name = "vllm:generation_tokens_total"
    if not first or not last or name not in first or name not in last:
        return {"available": False, "probe_tokens": probe_tokens, "server_tokens": None, "difference": None,
                "match": None, "detail": "no vllm:generation_tokens_total before and after the load"}
    delta = round(last[name] - first[name])
    diff = probe_tokens - delta
    match = abs(diff) <= max(1.0, tolerance * max(delta, probe_tokens))
    within = "within" if match else "beyond"
    detail = "agrees" if diff == 0 else f"probe counted {diff:+d} tokens vs the server ({within} 1 %)"
    if not match:
        detail += "; another client, a cancelled request or a restarted server can explain a mismatch"
    return {"available": True, "probe_tokens": probe_tokens, "server_tokens": delta, "difference": diff,
            "match": match, "detail": detail}


def report_schema() -> dict[str, Any]:
    schema = type_schema(Report)
    return {"$schema": DRAFT, "$id": "classroom_probe/report.schema.json",
            "title": f"classroom_probe report, schema_version {SCHEMA_VERSION}", **schema}
