"""The gate: thresholds, profiles, verdict and exit codes."""

import json
from pathlib import Path

import pytest
from classroom_probe.errors import BadInput
from classroom_probe.gate import GateInputs, evaluate
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


def test_probe_lag_makes_the_run_inconclusive_even_when_other_checks_fail() -> None:
    v = evaluate(PROFILES["classroom"], inputs(lag_p99_ms=9.0, failures=3))
    assert v.status == "inconclusive" and v.exit_code == 3


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
