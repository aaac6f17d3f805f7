"""The gate: thresholds, profiles, verdict and exit codes."""

import json
from pathlib import Path

import pytest
from classroom_probe.checks import CATALOGUE, CHECK_IDS, CHECKS
from classroom_probe.errors import BadInput
from classroom_probe.gate import GateInputs, evaluate, ramp_check
from classroom_probe.gpu import GpuSeries, parse_smi_csv
from classroom_probe.thresholds import PROFILES, Thresholds, apply_overrides, load_thresholds

# Real series recorded on a 2x H200 host (nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used).
GPU0_ONLY = """2026/11/23 05:09:07.694, 0, 100, 973
2026/11/23 05:09:07.697, 1, 0, 4
2026/11/23 05:09:08.701, 0, 100, 973
2026/11/23 05:09:08.701, 1, 0, 4
"""
BOTH = """2026/11/23 05:10:07.694, 0, 100, 973
2026/11/23 05:10:07.697, 1, 97, 970
2026/11/23 05:10:08.701, 0, 98, 973
2026/11/23 05:10:08.701, 1, 100, 970
"""


def inputs(**kw: object) -> GateInputs:
    base: dict[str, object] = {"successes": 50, "failures": 0, "ttft_p95_ms": 120.0, "student_tok_s_p50": 45.0,
                               "gpu_means": {0: 80.0, 1: 70.0}, "lag_p99_ms": 1.2}
    base.update(kw)
    return GateInputs(**base)  # type: ignore[arg-type]


def by_name(verdict: object) -> dict[str, object]:
    return {c.name: c for c in verdict.checks}  # type: ignore[attr-defined]


def test_classroom_pass() -> None:
    v = evaluate(PROFILES["classroom"], inputs())
    assert v.status == "pass" and v.exit_code == 0
    assert all(c.passed for c in v.checks)


@pytest.mark.parametrize(("change", "failing"), [
    ({"ttft_p95_ms": 501.0}, "ttft_p95_ms_max"),
    ({"student_tok_s_p50": 29.9}, "student_output_tok_s_min"),
    ({"failures": 1}, "failures_max"),
    ({"successes": 9}, "min_requests"),
    ({"gpu_means": {0: 80.0, 1: 5.0}}, "gpu_util_mean_min_pct"),
    ({"gpu_means": {}}, "gpu_util_mean_min_pct"),
])
def test_each_check_fails(change: dict[str, object], failing: str) -> None:
    v = evaluate(PROFILES["classroom"], inputs(**change))
    assert v.status == "fail" and v.exit_code == 1
    assert by_name(v)[failing].passed is False  # type: ignore[attr-defined]


def test_no_successes_fails_latency_checks_rather_than_skipping() -> None:
    v = evaluate(PROFILES["classroom"], inputs(successes=0, ttft_p95_ms=None, student_tok_s_p50=None))
    assert by_name(v)["ttft_p95_ms_max"].passed is False  # type: ignore[attr-defined]


def test_probe_lag_voids_latency_and_throughput_only() -> None:
    v = evaluate(PROFILES["classroom"], inputs(lag_p99_ms=9.0, ttft_p95_ms=900.0, student_tok_s_p50=3.0, successes=2))
    assert v.status == "inconclusive" and v.exit_code == 3
    results = {c.name: c.result for c in v.checks}
    assert results["ttft_p95_ms_max"] == results["student_output_tok_s_min"] == results["min_requests"] == "void"
    assert results["probe_loop_lag_p99_ms_max"] == "fail" and results["failures_max"] == "pass"


def test_server_faults_fail_the_run_whatever_the_probe_health() -> None:
    # Every request failed with a server fault while the probe's loop lagged: fail, not inconclusive.
    v = evaluate(PROFILES["classroom"], inputs(lag_p99_ms=40.0, failures=12, server_failures=12, successes=0,
                                               ttft_p95_ms=None, student_tok_s_p50=None))
    assert v.status == "fail" and v.exit_code == 1
    results = {c.name: c.result for c in v.checks}
    assert results["failures_max"] == "fail" and results["ttft_p95_ms_max"] == "void"


def test_failures_the_probe_may_cause_are_void_under_a_slow_probe() -> None:
    # 3 drain timeouts, no server fault: the probe's own slowness can explain them.
    v = evaluate(PROFILES["classroom"], inputs(lag_p99_ms=9.0, failures=3, server_failures=0))
    assert v.status == "inconclusive"
    assert {c.name: c.result for c in v.checks}["failures_max"] == "void"
    # With a healthy probe the same failures fail the run.
    assert evaluate(PROFILES["classroom"], inputs(failures=3, server_failures=0)).status == "fail"


def test_gpu_imbalance_fails_whatever_the_probe_health() -> None:
    v = evaluate(PROFILES["classroom"], inputs(lag_p99_ms=9.0, gpu_means={0: 90.0, 1: 20.0}))
    assert v.status == "fail"


# (check, inputs at the limit, one unit on the passing side, one unit on the failing side)
LIMITS = [
    ("ttft_p95_ms_max", "ttft_p95_ms", 500.0, 499.0, 501.0),
    ("student_output_tok_s_min", "student_tok_s_p50", 30.0, 31.0, 29.0),
    ("min_requests", "successes", 10, 11, 9),
    ("probe_loop_lag_p99_ms_max", "lag_p99_ms", 5.0, 4.0, 6.0),
]


@pytest.mark.parametrize(("check", "key", "at", "inside", "outside"), LIMITS)
def test_each_check_at_its_limit(check: str, key: str, at: float, inside: float, outside: float) -> None:
    for value, passed in ((at, True), (inside, True), (outside, False)):
        c = by_name(evaluate(PROFILES["classroom"], inputs(**{key: value})))[check]
        assert c.passed is passed, (check, value)  # type: ignore[attr-defined]
        assert c.limit == at  # type: ignore[attr-defined]


def test_failures_at_their_limit() -> None:
    t = apply_overrides(PROFILES["classroom"], {"failures_max": 2})
    for failures, passed in ((2, True), (1, True), (3, False)):
        c = by_name(evaluate(t, inputs(failures=failures)))["failures_max"]
        assert c.passed is passed, failures  # type: ignore[attr-defined]
    assert by_name(evaluate(PROFILES["classroom"], inputs(failures=0)))["failures_max"].passed  # type: ignore[attr-defined]
    assert not by_name(evaluate(PROFILES["classroom"], inputs(failures=1)))["failures_max"].passed  # type: ignore[attr-defined]


@pytest.mark.parametrize(("means", "passed"), [({0: 10.0, 1: 50.0}, True), ({0: 11.0, 1: 20.0}, True),
                                               ({0: 9.0, 1: 18.0}, False)])
def test_gpu_floor_at_its_limit(means: dict[int, float], passed: bool) -> None:
    c = by_name(evaluate(PROFILES["classroom"], inputs(gpu_means=means)))["gpu_util_mean_min_pct"]
    assert c.passed is passed and c.limit == 10.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("means", "passed"), [({0: 80.0, 1: 40.0}, True), ({0: 40.0, 1: 40.0}, True),
                                               ({0: 90.0, 1: 30.0}, False)])
def test_gpu_balance_at_its_limit(means: dict[int, float], passed: bool) -> None:
    # ratio 2.0 (at the limit), 1.0 (one unit inside), 3.0 (one unit outside)
    c = by_name(evaluate(PROFILES["classroom"], inputs(gpu_means=means)))["gpu_util_balance_max_ratio"]
    assert c.passed is passed and c.limit == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("largest", "passed"), [(4, True), (5, True), (3, False), (None, False)])
def test_ramp_check_at_its_limit(largest: int | None, passed: bool) -> None:
    c = ramp_check(largest, 4, 4, 16)
    assert c.passed is passed and c.limit == 4


def test_every_check_has_a_stable_id_a_plain_name_and_what_to_change() -> None:
    assert CHECK_IDS == ("failures_max", "min_requests", "ttft_p95_ms_max", "student_output_tok_s_min",
                         "gpu_util_mean_min_pct", "gpu_util_balance_max_ratio", "probe_loop_lag_p99_ms_max",
                         "ramp_largest_passing_students")
    for info in CATALOGUE:
        assert info.title and info.what_to_change and info.unit and info.measures
        assert info.title != info.id
    v = evaluate(PROFILES["classroom"], inputs(), [ramp_check(8, 4, 4, 16)])
    assert sorted(c.name for c in v.checks) == sorted(CHECK_IDS)
    for c in v.checks:
        doc = c.to_json()
        assert doc["id"] == c.name and doc["title"] == CHECKS[c.name].title and doc["what_to_change"]


def test_gpu_imbalance_from_real_series_fails_then_passes() -> None:
    idle_gpu = GpuSeries("smi", "", parse_smi_csv(GPU0_ONLY))
    v = evaluate(PROFILES["classroom"], inputs(gpu_means=idle_gpu.means()))
    checks = by_name(v)
    assert checks["gpu_util_balance_max_ratio"].passed is False  # type: ignore[attr-defined]
    assert checks["gpu_util_balance_max_ratio"].measured is None  # type: ignore[attr-defined]  # infinite ratio
    assert checks["gpu_util_mean_min_pct"].measured == 0  # type: ignore[attr-defined]
    busy = GpuSeries("smi", "", parse_smi_csv(BOTH))
    assert busy.means() == {0: 99.0, 1: 98.5}
    v = evaluate(PROFILES["classroom"], inputs(gpu_means=busy.means()))
    assert v.status == "pass"
    assert by_name(v)["gpu_util_balance_max_ratio"].measured == pytest.approx(99 / 98.5, abs=1e-3)  # type: ignore[attr-defined]


def test_gpu_off_and_lab_profile_skip_gpu_checks() -> None:
    v = evaluate(PROFILES["classroom"], inputs(gpu_means=None))
    assert by_name(v)["gpu_util_mean_min_pct"].passed is None  # type: ignore[attr-defined]
    assert v.status == "pass"
    v = evaluate(PROFILES["lab"], inputs(gpu_means={}, ttft_p95_ms=3000.0, student_tok_s_p50=3.0, lag_p99_ms=30.0))
    assert v.status == "pass"


def test_overrides_and_null_disables() -> None:
    t = apply_overrides(PROFILES["classroom"], {"ttft_p95_ms_max": 250, "gpu_util_balance_max_ratio": None,
                                                "failures_max": 2})
    assert t.ttft_p95_ms_max == 250.0 and t.gpu_util_balance_max_ratio is None and t.failures_max == 2
    v = evaluate(t, inputs(failures=2, gpu_means={0: 90.0, 1: 20.0}))
    assert v.status == "pass"


@pytest.mark.parametrize(("obj", "field"), [
    ({"ttft_p95": 1}, "thresholds.ttft_p95"),
    ({"ttft_p95_ms_max": "fast"}, "thresholds.ttft_p95_ms_max"),
    ({"failures_max": 1.5}, "thresholds.failures_max"),
    ({"failures_max": -1}, "thresholds.failures_max"),
    ({"gpu_util_balance_max_ratio": 0.5}, "thresholds.gpu_util_balance_max_ratio"),
    ({"min_requests": True}, "thresholds.min_requests"),
    ([1, 2], "--thresholds"),
])
def test_bad_thresholds_name_the_field(obj: object, field: str) -> None:
    with pytest.raises(BadInput) as err:
        apply_overrides(PROFILES["classroom"], obj)
    assert err.value.field == field


def test_thresholds_file_and_profile(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"student_output_tok_s_min": 12}))
    t = load_thresholds("ollama", f)
    assert t == Thresholds(**{**PROFILES["ollama"].to_json(), "student_output_tok_s_min": 12.0})  # type: ignore[arg-type]
    f.write_text("{nope")
    with pytest.raises(BadInput) as err:
        load_thresholds("lab", f)
    assert err.value.field == "--thresholds"
