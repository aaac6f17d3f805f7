"""Load processes: the work is shared out, and their results merge into one set of figures (on loopback)."""

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
from classroom_probe.config import Config
from classroom_probe.errors import BadInput
from classroom_probe.health import HealthSeries, merge_health
from classroom_probe.metrics import Aggregator, Slo
from classroom_probe.records import RequestRecord
from classroom_probe.runner import run
from classroom_probe.stats import Reservoir, percentile
from classroom_probe.thresholds import PROFILES
from classroom_probe.workers import choose_workers
from loopback import State

LAB = replace(PROFILES["lab"], probe_loop_lag_p99_ms_max=None)
MS = 1_000_000


def config(base: str, **kw: object) -> Config:
    options: dict[str, object] = {"base_url": base, "model": "ok", "max_tokens": 6, "warmup": 0.0, "gpu": "off",
                                  "metrics_url": "auto", "profile": "lab", "thresholds": LAB}
    options.update(kw)
    return Config(**options)  # type: ignore[arg-type]


def test_reservoirs_filled_apart_merge_into_one_uniform_sample() -> None:
    rng = random.Random(3)
    low = [rng.uniform(0, 100) for _ in range(5_000)]
    high = [rng.uniform(100, 200) for _ in range(15_000)]
    a, b = Reservoir(1_000, 1), Reservoir(1_000, 2)
    a.extend(low)
    b.extend(high)
    a.merge(b)
    exact = sorted(low + high)
    assert a.count == 20_000 and a.min == exact[0] and a.max == exact[-1]
    assert a.total == pytest.approx(sum(exact)) and len(a.sample) == 1_000 and not a.exact
    # A quarter of the values are below 100: the merged sample keeps that share (binomial, 1,000 draws).
    below = sum(1 for v in a.sample if v < 100) / len(a.sample)
    assert abs(below - 0.25) < 0.05
    for p in (50, 90, 99):
        assert abs((a.quantile(p) or 0) - percentile(exact, p)) < 8  # reservoir accuracy, not exactness


def test_reservoirs_below_capacity_merge_exactly() -> None:
    a, b = Reservoir(100), Reservoir(100)
    a.extend([1.0, 5.0])
    b.extend([3.0])
    a.merge(b)
    assert sorted(a.sample) == [1.0, 3.0, 5.0] and a.exact and a.summary()["p50"] == 3.0


def rec(index: int, student: int, ttft_ms: float, gaps: list[float], failure: bool = False) -> RequestRecord:
    r = RequestRecord(index, student, True)
    r.start_ns = 1000 * MS
    r.first_token_ns = r.start_ns + int(ttft_ms * MS)
    r.gaps_ns = [int(g * MS) for g in gaps]
    r.gap_tokens = [1] * len(gaps)
    r.last_event_ns = r.end_ns = r.first_token_ns + sum(r.gaps_ns)
    r.output_tokens = len(gaps) + 1
    r.chunks = len(gaps) + 1
    r.tokens_estimated = False
    if failure:
        from classroom_probe.records import FailureKind  # noqa: PLC0415

        r.failure = FailureKind.ERROR_AFTER_TOKENS
    return r


def test_aggregators_merge_to_what_one_would_have_counted() -> None:
    records = [rec(i, i % 4, 10 + i, [5 + (i % 3)] * (2 + i % 5), failure=i % 7 == 0) for i in range(40)]
    whole = Aggregator(Slo(50, 100))
    parts = [Aggregator(Slo(50, 100), seed=s) for s in range(2)]
    for r in records:
        whole.add(r)
        parts[r.student % 2].add(r)  # type: ignore[operator]
    for agg in (whole, *parts):
        agg.window_start_ns = 1000 * MS
    parts[0].merge(parts[1])
    assert parts[0].summary() == whole.summary()


def test_merged_health_keeps_each_process_and_aligns_seconds() -> None:
    a, b = HealthSeries(), HealthSeries()
    origin = 10 * 10**9
    a.per_second = [(origin + 10**9 + 3, 2.0, 50.0), (origin + 2 * 10**9, 1.0, 40.0)]
    b.per_second = [(origin + 10**9 - 20_000_000, 7.0, 30.0)]
    a.lag.add(3 * MS)
    a.lag.wall_ns = b.lag.wall_ns = 10**9
    a.cpu_s, b.cpu_s = 1.0, 0.5
    merged = merge_health([a, b], origin, parent_cpu_s=0.25)
    assert merged.per_second == [(origin + 10**9, 7.0, 80.0), (origin + 2 * 10**9, 1.0, 40.0)]
    assert merged.cpu_s == 1.75 and [w.worker for w in merged.workers] == [0, 1]
    assert merged.gate_lag_p99_ms() == max(w.lag_p99_ms or 0 for w in merged.workers)


@pytest.mark.parametrize(("options", "cpus", "hooked", "want"), [
    ({"students": 24}, 2, False, 1),  # 3,600 tok/s expected: one process
    ({"students": 256}, 64, False, 5),  # 38,400 tok/s: five processes of 8,000
    ({"students": 256}, 4, False, 3),  # one core left free
    ({"mode": "rate", "rate": 100.0, "max_tokens": 256}, 64, False, 4),
    ({"students": 256, "workers": 2}, 64, False, 2),
    ({"students": 256}, 64, True, 1),  # a per-request hook runs in this process
])
def test_load_processes_chosen_from_cores_and_expected_rate(options: dict[str, object], cpus: int, hooked: bool,
                                                             want: int) -> None:
    c = config("http://127.0.0.1:9", **options)
    c.validate()
    assert choose_workers(c, cpus, hooked) == want


def test_a_hook_with_several_processes_is_bad_input() -> None:
    c = config("http://127.0.0.1:9", workers=2)
    with pytest.raises(BadInput) as err:
        choose_workers(c, 8, True)
    assert err.value.field == "--workers"


def test_batch_over_two_processes_merges_counts_and_percentiles(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    result = run(config(base, mode="batch", requests=60, concurrency=6, workers=2, records=True,
                        report_dir=tmp_path))
    r = result.report
    assert r["load"]["workers"] == 2 and len(r["probe_health"]["workers"]) == 2
    a = r["aggregates"]
    assert a["requests_total"] == a["requests_ok"] == r["load"]["requests_issued"] == 60
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert sorted(x["index"] for x in records) == list(range(60))  # every request once, global indices
    assert {x["student"] for x in records} == set(range(6))  # six slots over two processes
    assert not list(tmp_path.glob(".records.*"))
    # Below the reservoir's capacity the merged percentiles are the exact ones (to rounding).
    ttft = sorted(x["ttft_ms"] for x in records)
    for p in (50, 90, 99):
        assert a["latency_ms"]["ttft"][f"p{p}"] == pytest.approx(percentile(ttft, p), abs=2e-3)  # type: ignore[literal-required]
    assert a["latency_ms"]["itl"]["count"] == 60 * 5 and a["output_tokens"] == 360
    assert r["server"]["cross_check"]["match"] is True and r["server"]["cross_check"]["probe_tokens"] == 360
    assert r["throughput_series"]["requests_done"] == sorted(r["throughput_series"]["requests_done"])
    assert result.verdict.status == "pass"


def test_classroom_and_ramp_over_two_processes(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    result = run(config(base, model="ok_slow", mode="ramp", ramp_start=2, ramp_step=2, ramp_max=4,
                        ramp_step_duration=0.8, think_min=0.0, think_max=0.1, workers=2, records=True,
                        report_dir=tmp_path,
                        thresholds=replace(LAB, ttft_p95_ms_max=5000.0)))
    ramp = result.report["load"]["ramp"]
    assert ramp is not None and [s["students"] for s in ramp["steps"]] == [2, 4]
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    indices = [x["index"] for x in records]
    assert len(indices) == len(set(indices))  # unique across processes and steps
    assert {x["student"] for x in records} == set(range(4))
    total = sum(s["requests_ok"] + s["failures"] for s in ramp["steps"])
    assert total == len(records) == result.report["failures"]["total"] + sum(1 for x in records if x["ok"])
    assert math.isclose(result.report["aggregates"]["requests_ok"], ramp["steps"][-1]["requests_ok"])
