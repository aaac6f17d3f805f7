"""The verdict: each threshold as a check with measured value, limit and result.

Results: `pass`, `fail`, `skipped` (disabled or not applicable), `void` (failed, but the probe was
too slow to trust it). Status: when the probe's health check fails, failing latency and throughput
checks are void (see checks.py) and the run is `inconclusive`, unless a check the probe cannot
distort failed too (the server's failed requests, GPU balance): then it is `fail`. Otherwise `fail`
if any check failed, else `pass`. A failed-requests check is void only where the failures the
server caused are within the limit by themselves.
"""

import math
from dataclasses import dataclass, field, replace

from classroom_probe.checks import CHECKS, VOIDABLE_KINDS
from classroom_probe.thresholds import Thresholds

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
STATUSES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # the check's stable ID (checks.CHECK_IDS)
    measured: float | int | None
    limit: float | int | None
    passed: bool | None  # the comparison alone; None: disabled or not applicable
    detail: str = ""
    result: str = ""  # pass, fail, skipped, void: filled by `evaluate`
    voidable: bool | None = None  # None: as the check's kind says

    @property
    def counts_against(self) -> bool:
        return self.result == "fail"

    def to_json(self) -> dict[str, object]:
        info = CHECKS.get(self.name)
        return {"id": self.name, "name": self.name, "title": info.title if info else self.name,
                "kind": info.kind if info else "server", "unit": info.unit if info else "",
                "bound": info.bound if info else "max", "measured": self.measured, "limit": self.limit,
                "passed": self.passed, "result": self.result or _plain_result(self.passed), "detail": self.detail,
                "what_to_change": info.what_to_change if info else ""}


def _plain_result(passed: bool | None) -> str:
    return "skipped" if passed is None else ("pass" if passed else "fail")


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
    server_failures: int | None = None  # failures the server caused; None: all of them


def _cmp(name: str, measured: float | None, limit: float | None, *, upper: bool, unit: str, none_detail: str) -> Check:
    if limit is None:
        return Check(name, measured, None, None, "disabled")
    if measured is None:
        return Check(name, None, limit, False, none_detail)
    passed = measured <= limit if upper else measured >= limit
    op = "<=" if upper else ">="
    negation = "" if passed else "not "
    return Check(name, round(measured, 3), limit, passed, f"{measured:.3f} {unit} {negation}{op} {limit:g}")


def evaluate(t: Thresholds, m: GateInputs, extra: list[Check] | None = None) -> Verdict:
    checks: list[Check] = []
    if t.min_requests is None:
        checks.append(Check("min_requests", m.successes, None, None, "disabled"))
    else:
        ok = m.successes >= t.min_requests
        checks.append(Check("min_requests", m.successes, t.min_requests, ok,
                            f"{m.successes} successful measured requests"))
    server = m.failures if m.server_failures is None else m.server_failures
    if t.failures_max is None:
        checks.append(Check("failures_max", m.failures, None, None, "disabled"))
    else:
        probe_side = m.failures - server
        detail = f"{m.failures} failed requests, warm-up included"
        if probe_side:
            detail += f" ({probe_side} cancelled or failed inside the probe)"
        checks.append(Check("failures_max", m.failures, t.failures_max, m.failures <= t.failures_max, detail,
                            voidable=server <= t.failures_max))
    checks.append(_cmp("ttft_p95_ms_max", m.ttft_p95_ms, t.ttft_p95_ms_max, upper=True, unit="ms",
                       none_detail="no successful request"))
    checks.append(_cmp("student_output_tok_s_min", m.student_tok_s_p50, t.student_output_tok_s_min, upper=False,
                       unit="tok/s", none_detail="no request with two or more tokens"))
    checks.extend(_gpu_checks(t, m))
    checks.append(_cmp("probe_loop_lag_p99_ms_max", m.lag_p99_ms, t.probe_loop_lag_p99_ms_max, upper=True,
                       unit="ms", none_detail="no probe-health samples"))
    checks.extend(extra or [])
    return judge(checks)


def _voidable(c: Check) -> bool:
    if c.voidable is not None:
        return c.voidable
    info = CHECKS.get(c.name)
    return info is not None and info.kind in VOIDABLE_KINDS


def judge(checks: list[Check]) -> Verdict:
    """Results and status from compared checks (see the module docstring)."""
    probe_failed = any(c.passed is False and c.name in CHECKS and CHECKS[c.name].kind == "probe" for c in checks)
    out = []
    for c in checks:
        result = _plain_result(c.passed)
        if result == "fail" and probe_failed and _voidable(c):
            result = "void"
        out.append(replace(c, result=result))
    server_side = [c for c in out if c.result == "fail" and not (c.name in CHECKS and CHECKS[c.name].kind == "probe")]
    if server_side:
        status = "fail"
    elif probe_failed:
        status = "inconclusive"
    else:
        status = "pass"
    return Verdict(status, out)


def ramp_check(largest: int | None, start: int, step: int, maximum: int) -> Check:
    """The ramp's own check: at least its first class size met the SLO."""
    value = largest or 0
    return Check("ramp_largest_passing_students", value, start, value >= start,
                 f"largest student count meeting the SLO, steps of {step} up to {maximum}")


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
