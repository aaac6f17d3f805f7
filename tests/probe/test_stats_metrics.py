"""Metric maths with hand-computed expectations."""

import pytest
from classroom_probe.metrics import Aggregator, Slo, Timeline, outages
from classroom_probe.records import FailureKind, LiveSnapshot, RequestRecord
from classroom_probe.stats import Reservoir, percentile

MS = 1_000_000


def test_percentile_linear_interpolation() -> None:
    v = [1.0, 2.0, 3.0, 4.0]
    assert percentile(v, 50) == 2.5
    assert percentile(v, 90) == pytest.approx(3.7)
    assert percentile(v, 0) == 1.0
    assert percentile(v, 100) == 4.0
    assert percentile([5.0], 99) == 5.0


def test_reservoir_is_bounded_and_keeps_exact_extremes() -> None:
    r = Reservoir(capacity=100, seed=1)
    for i in range(10_000):
        r.add(float(i))
    assert len(r.sample) == 100
    s = r.summary()
    assert s["count"] == 10_000 and s["min"] == 0 and s["max"] == 9999 and s["mean"] == 4999.5
    assert s["exact"] is False
    assert 3500 < (s["p50"] or 0) < 6500  # a uniform sample of a uniform range


def test_reservoir_exact_below_capacity() -> None:
    r = Reservoir(capacity=10)
    r.extend([10.0, 20.0, 30.0])
    s = r.summary(scale=0.5)
    assert s["p50"] == 10.0 and s["max"] == 15.0 and s["exact"] is True


def rec(index: int, student: int | None, ttft_ms: float, gaps_ms: list[float], tokens: int,
        measured: bool = True, failure: FailureKind | None = None,
        gap_tokens: list[int] | None = None) -> RequestRecord:
    r = RequestRecord(index, student, measured)
    r.start_ns = 1000 * MS
    r.first_token_ns = r.start_ns + int(ttft_ms * MS)
    t = r.first_token_ns
    for g in gaps_ms:
        t += int(g * MS)
    r.gaps_ns = [int(g * MS) for g in gaps_ms]
    r.gap_tokens = gap_tokens if gap_tokens is not None else [0] * len(gaps_ms)
    r.last_event_ns = t
    r.end_ns = t
    r.output_tokens = tokens
    r.chunks = len(gaps_ms) + 1
    r.tokens_estimated = False
    r.failure = failure
    return r


def test_aggregator_hand_computed() -> None:
    agg = Aggregator(Slo(ttft_ms_max=150, tok_s_min=30))
    agg.window_start_ns = 1000 * MS
    # Student 0: TTFT 100 ms, 4 tokens over 3 gaps of 20 ms: TPOT 20 ms, 50 tok/s.
    agg.add(rec(0, 0, 100, [20, 20, 20], 4))
    # Student 1: TTFT 200 ms (misses TTFT SLO), 3 tokens, gaps 10 and 30: TPOT 20 ms, 50 tok/s.
    agg.add(rec(1, 1, 200, [10, 30], 3))
    # Student 1 again: TTFT 50 ms, 2 tokens, gap 100 ms: 10 tok/s (misses speed SLO).
    agg.add(rec(2, 1, 50, [100], 2))
    # Warm-up request and a failure: not in latency statistics.
    agg.add(rec(3, 0, 1, [1], 2, measured=False))
    agg.add(rec(4, 0, 5, [5], 2, failure=FailureKind.ERROR_AFTER_TOKENS))
    s = agg.summary()
    assert s["requests_ok"] == 3 and s["requests_measured"] == 4 and s["failures_measured"] == 1
    assert s["failures_by_kind"] == {"error_after_tokens": 1}
    lat = s["latency_ms"]
    assert lat["ttft"]["p50"] == 100 and lat["ttft"]["max"] == 200 and lat["ttft"]["count"] == 3
    assert lat["ttft"]["p90"] == pytest.approx(180)  # 100 + 0.8 * (200 - 100)
    assert lat["itl"]["count"] == 6 and lat["itl"]["p50"] == 20 and lat["itl"]["max"] == 100
    assert lat["tpot"]["p50"] == 20 and lat["tpot"]["max"] == 100
    assert lat["e2e"]["max"] == 240  # 200 + 40
    # Window: from start (1000 ms) to last measured end: request 1 ends at 1000 + 200 + 40 = 1240 ms.
    assert s["measured_window_s"] == 0.24
    assert s["output_tokens"] == 9
    assert s["output_tok_s"] == pytest.approx(9 / 0.24, abs=1e-3)
    # Goodput: only request 0 meets both TTFT <= 150 and >= 30 tok/s.
    assert s["goodput_requests"] == 1
    # Per student: 0 -> 3 tok / 0.06 s = 50; 1 -> (2 + 1) tok / (0.04 + 0.1) s = 21.43.
    per = s["student_output_tok_s"]
    assert per["unit"] == "student" and per["count"] == 2
    assert per["min"] == pytest.approx(21.429, abs=1e-3) and per["max"] == pytest.approx(50)
    assert per["p50"] == pytest.approx((50 + 21.4286) / 2, abs=1e-3)


def test_per_token_itl_weights_by_tokens() -> None:
    agg = Aggregator(Slo())
    agg.window_start_ns = 0
    # Gaps 30 ms carrying 3 tokens and 10 ms carrying 1 token: per-token ITL 10,10,10,10.
    agg.add(rec(0, 0, 10, [30, 10], 5, gap_tokens=[3, 1]))
    # A request with a chunk of unknown size is left out of per-token ITL.
    agg.add(rec(1, 0, 10, [30, 10], 5, gap_tokens=[3, 0]))
    lat = agg.summary()["latency_ms"]
    assert lat["itl_per_token"]["count"] == 4 and lat["itl_per_token"]["max"] == 10
    assert lat["itl"]["count"] == 4


def test_rate_mode_uses_requests_as_streams() -> None:
    agg = Aggregator(Slo())
    agg.window_start_ns = 0
    agg.add(rec(0, None, 10, [10, 10], 3))  # 2 tok / 20 ms = 100 tok/s
    agg.add(rec(1, None, 10, [50], 2))  # 1 tok / 50 ms = 20 tok/s
    per = agg.summary()["student_output_tok_s"]
    assert per["unit"] == "request" and per["p50"] == pytest.approx(60)


def test_single_token_request_has_no_tpot() -> None:
    r = rec(0, 0, 10, [], 1)
    assert r.tpot_ns is None
    agg = Aggregator(Slo(tok_s_min=1000))
    agg.window_start_ns = 0
    agg.add(r)
    s = agg.summary()
    assert s["latency_ms"]["tpot"]["count"] == 0 and s["goodput_requests"] == 1


def _timeline(seconds):
    """A Timeline from (ok, failed-by-kind) per second."""
    tl = Timeline()
    done = failed = 0
    kinds: dict[str, int] = {}
    tl.start(0, LiveSnapshot())
    for i, (ok, fails) in enumerate(seconds, start=1):
        done += ok + sum(fails.values())
        failed += sum(fails.values())
        for k, n in fails.items():
            kinds[k] = kinds.get(k, 0) + n
        tl.add(i * 1_000_000_000, LiveSnapshot(done=done, failed=failed, failures=dict(kinds)))
    return tl


def test_outage_runs_from_the_first_failing_second_to_the_first_success():
    tl = _timeline([
        (3, {}), (2, {}),
        (0, {"error_after_tokens": 2}),  # the kill: in-flight streams fail
        (0, {"connect_refused": 4}), (0, {}), (0, {"connect_refused": 3}),  # nothing listens
        (1, {}), (3, {}),  # back
    ])
    (w,) = outages(tl)
    assert (w.start_ns, w.end_ns) == (2_000_000_000, 7_000_000_000)
    assert w.failures == 9
    assert w.by_kind == {"connect_refused": 7, "error_after_tokens": 2}


def test_a_failure_beside_successes_is_no_outage_and_an_open_outage_has_no_end():
    assert outages(_timeline([(3, {"http_status": 1}), (3, {})])) == []
    (w,) = outages(_timeline([(3, {}), (0, {"connect_refused": 2}), (0, {})]))
    assert w.end_ns is None and w.failures == 2
