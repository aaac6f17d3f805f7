"""The verdict: each threshold as a check with measured value, limit and pass/fail."""

import math
from dataclasses import dataclass, field

from classroom_probe.thresholds import Thresholds

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    measured: float | int | None
    limit: float | int | None
    passed: bool | None  # None: disabled or not applicable; never counts either way
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "measured": self.measured, "limit": self.limit, "passed": self.passed,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # pass | fail | inconclusive
    checks: list[Check] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(self.status, EXIT_INCONCLUSIVE)

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True, slots=True)
class GateInputs:
    """The measured figures the gate needs, already reduced."""

    successes: int
    failures: int
    ttft_p95_ms: float | None
    student_tok_s_p50: float | None
    gpu_means: dict[int, float] | None  # None: GPU checks not applicable (--gpu off)
    gpu_reason: str = ""
    lag_p99_ms: float | None = None


HEALTH_CHECKS = frozenset({"probe_loop_lag_p99_ms_max"})


def _cmp(name: str, measured: float | None, limit: float | None, *, upper: bool, unit: str, none_detail: str) -> Check:
    if limit is None:
        return Check(name, measured, None, None, "disabled")
    if measured is None:
        return Check(name, None, limit, False, none_detail)
    passed = measured <= limit if upper else measured >= limit
    op = "<=" if upper else ">="
    negation = "" if passed else "not "
    return Check(name, round(measured, 3), limit, passed, f"{measured:.3f} {unit} {negation}{op} {limit}")


def evaluate(t: Thresholds, m: GateInputs, extra: list[Check] | None = None) -> Verdict:
    checks: list[Check] = []
    if t.min_requests is None:
        checks.append(Check("min_requests", m.successes, None, None, "disabled"))
    else:
        ok = m.successes >= t.min_requests
        checks.append(Check("min_requests", m.successes, t.min_requests, ok,
                            f"{m.successes} successful measured requests"))
    if t.failures_max is None:
        checks.append(Check("failures_max", m.failures, None, None, "disabled"))
    else:
        checks.append(Check("failures_max", m.failures, t.failures_max, m.failures <= t.failures_max,
                            f"{m.failures} failed requests, warm-up included"))
    checks.append(_cmp("ttft_p95_ms_max", m.ttft_p95_ms, t.ttft_p95_ms_max, upper=True, unit="ms",
                       none_detail="no successful request"))
    checks.append(_cmp("student_output_tok_s_min", m.student_tok_s_p50, t.student_output_tok_s_min, upper=False,
                       unit="tok/s", none_detail="no request with two or more tokens"))
    checks.extend(_gpu_checks(t, m))
    checks.append(_cmp("probe_loop_lag_p99_ms_max", m.lag_p99_ms, t.probe_loop_lag_p99_ms_max, upper=True,
                       unit="ms", none_detail="no probe-health samples"))
    checks.extend(extra or [])
    if any(c.passed is False and c.name in HEALTH_CHECKS for c in checks):
        status = "inconclusive"
    elif any(c.passed is False for c in checks):
        status = "fail"
    else:
        status = "pass"
    return Verdict(status, checks)


def _gpu_checks(t: Thresholds, m: GateInputs) -> list[Check]:
    floor, ratio = t.gpu_util_mean_min_pct, t.gpu_util_balance_max_ratio
    if m.gpu_means is None:
        return [Check(n, None, lim, None, "GPU sampling off") for n, lim in
                (("gpu_util_mean_min_pct", floor), ("gpu_util_balance_max_ratio", ratio))]
    out: list[Check] = []
    listing = ", ".join(f"GPU {i}: {v:.1f} %" for i, v in m.gpu_means.items())
    none = f"no GPU samples ({m.gpu_reason or 'no GPU seen'}); use --gpu off or a null threshold to skip"
    if floor is None:
        out.append(Check("gpu_util_mean_min_pct", None, None, None, "disabled"))
    elif not m.gpu_means:
        out.append(Check("gpu_util_mean_min_pct", None, floor, False, none))
    else:
        low = min(m.gpu_means.values())
        out.append(Check("gpu_util_mean_min_pct", round(low, 2), floor, low >= floor, f"lowest mean; {listing}"))
    if ratio is None:
        out.append(Check("gpu_util_balance_max_ratio", None, None, None, "disabled"))
    elif not m.gpu_means:
        out.append(Check("gpu_util_balance_max_ratio", None, ratio, False, none))
    else:
        hi, lo = max(m.gpu_means.values()), min(m.gpu_means.values())
        value = hi / lo if lo > 0 else (math.inf if hi > 0 else 1.0)
        passed = value <= ratio
        measured = None if math.isinf(value) else round(value, 3)
        detail = f"max/min of GPU means{' (a GPU stayed idle)' if math.isinf(value) else ''}; {listing}"
        out.append(Check("gpu_util_balance_max_ratio", measured, ratio, passed, detail))
    return out
