"""Aggregates over finished requests, with vLLM's metric definitions.

- TTFT: first content-bearing chunk minus request start.
- ITL (per chunk): gaps between consecutive content-bearing chunks, pooled over successful requests.
- ITL (per token): each gap divided by the tokens its chunk carried (known only from per-chunk usage),
  counted once per token; requests with any chunk of unknown size are left out.
- TPOT: per request, (E2E - TTFT) / (output_tokens - 1), requests with 2+ tokens.
- E2E: last event before the end of the stream minus request start.
- Per-student output tok/s: for each student, the sum over their successful measured requests of
  (output_tokens - 1) divided by the sum of (E2E - TTFT): the speed at which their answers streamed.
  Where requests have no student (rate mode), each request is its own stream.
Only measured (post-warm-up) requests enter the statistics; failures are counted by kind regardless.
Aggregators filled by different load processes merge into one (`merge`); `Timeline` turns the
running totals into 1 Hz series.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from classroom_probe.records import LiveSnapshot, RequestRecord
from classroom_probe.stats import Reservoir, Summary

NS_PER_MS = 1e6
NS_PER_S = 1e9
MIN_DECODE_S = 1e-6


class LatencyMs(TypedDict):
    ttft: Summary
    itl: Summary
    itl_per_token: Summary
    tpot: Summary
    e2e: Summary


class StudentRates(Summary):
    unit: Literal["student", "request"]
    p10: float | None


class Aggregates(TypedDict):
    requests_total: int
    requests_measured: int
    requests_ok: int
    failures_total: int
    failures_measured: int
    failures_by_kind: dict[str, int]
    measured_window_s: float | None
    output_tokens: int
    output_tokens_estimated: bool
    requests_with_estimated_tokens: int
    output_tok_s: float | None
    requests_per_s: float | None
    goodput_requests: int
    goodput_per_s: float | None
    latency_ms: LatencyMs
    student_output_tok_s: StudentRates
    request_output_tok_s: Summary


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request SLO used for goodput (None: not part of it)."""

    ttft_ms_max: float | None = None
    tok_s_min: float | None = None


class Aggregator:
    """Folds finished requests into bounded-memory statistics."""

    def __init__(self, slo: Slo, seed: int = 0, capacity: int = 100_000) -> None:
        self.slo = slo
        self.ttft = Reservoir(capacity, seed + 1)
        self.itl = Reservoir(capacity, seed + 2)
        self.itl_token = Reservoir(capacity, seed + 3)
        self.tpot = Reservoir(capacity, seed + 4)
        self.e2e = Reservoir(capacity, seed + 5)
        self.request_tok_s = Reservoir(capacity, seed + 6)
        self.students: dict[int, list[float]] = {}
        self.failures: Counter[str] = Counter()
        self.measured_failures: Counter[str] = Counter()
        self.requests = 0
        self.measured = 0
        self.ok = 0
        self.goodput = 0
        self.output_tokens = 0
        self.estimated_requests = 0
        self.all_tokens = 0
        self.window_start_ns: int | None = None
        self.window_end_ns: int | None = None

    def add(self, rec: RequestRecord) -> None:
        self.requests += 1
        self.all_tokens += rec.output_tokens
        key = rec.failure_key
        if key is not None:
            self.failures[key] += 1
        if not rec.measured:
            return
        self.measured += 1
        if self.window_end_ns is None or rec.end_ns > self.window_end_ns:
            self.window_end_ns = rec.end_ns
        if key is not None:
            self.measured_failures[key] += 1
            return
        self.ok += 1
        self.output_tokens += rec.output_tokens
        if rec.tokens_estimated:
            self.estimated_requests += 1
        ttft = rec.ttft_ns
        e2e = rec.e2e_ns
        if ttft is not None:
            self.ttft.add(ttft)
        if e2e is not None:
            self.e2e.add(e2e)
        self._add_gaps(rec)
        tpot = rec.tpot_ns
        rate: float | None = None
        if tpot is not None and ttft is not None and e2e is not None:
            self.tpot.add(tpot)
            # All tokens in one network read: a decode time of zero, floored to 1 us to stay finite.
            decode_s = max((e2e - ttft) / NS_PER_S, MIN_DECODE_S)
            rate = (rec.output_tokens - 1) / decode_s
            self.request_tok_s.add(rate)
            if rec.student is not None:
                acc = self.students.setdefault(rec.student, [0.0, 0.0])
                acc[0] += rec.output_tokens - 1
                acc[1] += decode_s
        if self._meets_slo(ttft, rate):
            self.goodput += 1

    def _add_gaps(self, rec: RequestRecord) -> None:
        self.itl.extend(rec.gaps_ns)
        if rec.gap_tokens and 0 not in rec.gap_tokens:
            if all(n == 1 for n in rec.gap_tokens):
                self.itl_token.extend(rec.gaps_ns)
                return
            per_token: list[float] = []
            for gap, n in zip(rec.gaps_ns, rec.gap_tokens, strict=True):
                per_token.extend([gap / n] * n)
            self.itl_token.extend(per_token)

    def _meets_slo(self, ttft_ns: int | None, rate: float | None) -> bool:
        if self.slo.ttft_ms_max is not None and (ttft_ns is None or ttft_ns / NS_PER_MS > self.slo.ttft_ms_max):
            return False
        # Requests of one token have no streaming speed; they meet the speed SLO by definition.
        return self.slo.tok_s_min is None or rate is None or rate >= self.slo.tok_s_min

    def merge(self, other: "Aggregator") -> None:
        """Fold in an aggregator of another load process (same window start, disjoint students)."""
        for mine, theirs in ((self.ttft, other.ttft), (self.itl, other.itl), (self.itl_token, other.itl_token),
                             (self.tpot, other.tpot), (self.e2e, other.e2e),
                             (self.request_tok_s, other.request_tok_s)):
            mine.merge(theirs)
        for student, (tokens, secs) in other.students.items():
            acc = self.students.setdefault(student, [0.0, 0.0])
            acc[0] += tokens
            acc[1] += secs
        self.failures.update(other.failures)
        self.measured_failures.update(other.measured_failures)
        self.requests += other.requests
        self.measured += other.measured
        self.ok += other.ok
        self.goodput += other.goodput
        self.output_tokens += other.output_tokens
        self.estimated_requests += other.estimated_requests
        self.all_tokens += other.all_tokens
        if other.window_end_ns is not None and (self.window_end_ns is None or other.window_end_ns > self.window_end_ns):
            self.window_end_ns = other.window_end_ns
        if self.window_start_ns is None:
            self.window_start_ns = other.window_start_ns

    @property
    def window_s(self) -> float | None:
        if self.window_start_ns is None or self.window_end_ns is None:
            return None
        span = (self.window_end_ns - self.window_start_ns) / NS_PER_S
        return span if span > 0 else None

    def student_rates(self) -> Reservoir:
        """Per-student output tok/s; per request where no student ids exist."""
        if not self.students:
            return self.request_tok_s
        res = Reservoir(capacity=max(1, len(self.students)))
        for tokens, secs in self.students.values():
            if secs > 0:
                res.add(tokens / secs)
        return res

    @property
    def failures_measured_total(self) -> int:
        return sum(self.measured_failures.values())

    def summary(self) -> Aggregates:
        window = self.window_s
        per_student = self.student_rates()
        per = per_student.summary()
        rates = StudentRates(unit="student" if self.students else "request", count=per["count"], mean=per["mean"],
                             p50=per["p50"], p90=per["p90"], p95=per["p95"], p99=per["p99"], min=per["min"],
                             max=per["max"], exact=per["exact"],
                             p10=None if not per_student.count else round(per_student.quantile(10) or 0.0, 3))
        return {
            "requests_total": self.requests,
            "requests_measured": self.measured,
            "requests_ok": self.ok,
            "failures_total": sum(self.failures.values()),
            "failures_measured": self.failures_measured_total,
            "failures_by_kind": dict(sorted(self.failures.items())),
            "measured_window_s": None if window is None else round(window, 3),
            "output_tokens": self.output_tokens,
            "output_tokens_estimated": self.estimated_requests > 0,
            "requests_with_estimated_tokens": self.estimated_requests,
            "output_tok_s": None if window is None else round(self.output_tokens / window, 3),
            "requests_per_s": None if window is None else round(self.ok / window, 4),
            "goodput_requests": self.goodput,
            "goodput_per_s": None if window is None else round(self.goodput / window, 4),
            "latency_ms": {
                "ttft": self.ttft.summary(1 / NS_PER_MS),
                "itl": self.itl.summary(1 / NS_PER_MS),
                "itl_per_token": self.itl_token.summary(1 / NS_PER_MS),
                "tpot": self.tpot.summary(1 / NS_PER_MS),
                "e2e": self.e2e.summary(1 / NS_PER_MS),
            },
            "student_output_tok_s": rates,
            "request_output_tok_s": self.request_tok_s.summary(),
        }


@dataclass(slots=True)
class Timeline:
    """1 Hz series from running totals: output tok/s, requests done, failures (cumulative and new per
    kind in each second) and requests in flight at the probe."""

    t_ns: list[int] = field(default_factory=list)
    output_tok_s: list[float] = field(default_factory=list)
    requests_done: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    new_failures: dict[str, list[int]] = field(default_factory=dict)
    _last: LiveSnapshot | None = None
    _last_t: int = 0

    def start(self, t_ns: int, snap: LiveSnapshot) -> None:
        self._last, self._last_t = snap, t_ns

    def add(self, t_ns: int, snap: LiveSnapshot) -> float:
        """Record one second; returns the output tok/s over it."""
        last = self._last or LiveSnapshot()
        dt = max((t_ns - self._last_t) / NS_PER_S, 1e-9)
        rate = round(max(0, snap.tokens - last.tokens) / dt, 2)
        n = len(self.t_ns)
        self.t_ns.append(t_ns)
        self.output_tok_s.append(rate)
        self.requests_done.append(snap.done)
        self.failures.append(snap.failed)
        self.in_flight.append(snap.inflight)
        for kind, count in snap.failures.items():
            series = self.new_failures.setdefault(kind, [0] * n)
            series.append(count - last.failures.get(kind, 0))
        for series in self.new_failures.values():
            if len(series) < n + 1:
                series.append(0)
        self._last, self._last_t = snap, t_ns
        return rate


@dataclass(frozen=True)
class Outage:
    """A stretch in which requests failed and none succeeded: the service was out, as students saw it."""

    start_ns: int
    end_ns: int | None  # first second with a success again; None when the run ended still out
    failures: int
    by_kind: dict[str, int]


def outages(timeline: Timeline) -> list[Outage]:
    """Outage windows from the 1 Hz series: from the first second with failures and no success, to the
    first second with a success again. Seconds in which nothing finished do not end an outage."""
    found: list[Outage] = []
    start: int | None = None
    failed = 0
    kinds: dict[str, int] = {}
    prev_done = prev_failed = 0
    for i, t in enumerate(timeline.t_ns):
        new_done = timeline.requests_done[i] - prev_done
        new_failed = timeline.failures[i] - prev_failed
        prev_done, prev_failed = timeline.requests_done[i], timeline.failures[i]
        new_ok = new_done - new_failed
        if start is None and new_failed > 0 and new_ok <= 0:
            start, failed, kinds = timeline.t_ns[i - 1] if i else t, 0, {}
        if start is not None:
            if new_ok > 0:
                found.append(Outage(start, t, failed, dict(sorted(kinds.items()))))
                start = None
                continue
            failed += new_failed
            for kind, series in timeline.new_failures.items():
                if i < len(series) and series[i]:
                    kinds[kind] = kinds.get(kind, 0) + series[i]
    if start is not None:
        found.append(Outage(start, None, failed, dict(sorted(kinds.items()))))
    return found
