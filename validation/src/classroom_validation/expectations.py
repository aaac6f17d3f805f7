"""What a validation run must show, judged from its results folder; the run passes when every step ran
without failing and no expectation is missed (one whose steps did not run is neither met nor missed)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from classroom_validation.results import RunResults, read_object
from classroom_validation.startup import Startup, parse_startup

CLASS_STEP = re.compile(r"^probe_c(\d+)$")
MAIN_START = re.compile(r"^serve_(tp(\d+))$")
BALANCE_CHECK = "gpu_util_balance_max_ratio"


@dataclass(frozen=True)
class Expectation:
    what: str
    met: bool | None  # None: not run
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_steps(steps: dict[str, dict[str, Any]]) -> list[tuple[int, str]]:
    """(students, step name) of the gate runs at class sizes, smallest first."""
    found = [(int(m.group(1)), name) for name in steps if (m := CLASS_STEP.match(name))]
    return sorted(found)


def main_engine(steps: dict[str, dict[str, Any]]) -> str:
    """The tensor-parallel engine's name (tp<size>) as its first start's step names it; tp2 when none ran."""
    found = [m.group(1) for name in steps if (m := MAIN_START.match(name)) and int(m.group(2)) > 1]
    return found[0] if found else "tp2"


def step_data(steps: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    step = steps.get(name) or {}
    return dict(step.get("data") or {}) if step.get("status") == "ok" else {}


def startup_of(steps: dict[str, dict[str, Any]], name: str, results: Path) -> Startup | None:
    """The start-up phases of a serve step: recorded with it, or (earlier results) split from its log."""
    data = step_data(steps, name)
    if not data:
        return None
    if data.get("startup"):
        return Startup.from_dict(data["startup"])
    log = results / str(data.get("log") or f"vllm-{name.split('_', 1)[1]}.log")
    return parse_startup(log.read_text(errors="replace"), data.get("healthy_after_s")) if log.is_file() else None


def balance_check(data: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in data.get("checks") or [] if c.get("name") == BALANCE_CHECK), None)


def _preflight(results: Path) -> Expectation:
    path = next(iter(sorted((results / "preflight").glob("*/preflight.json"))), None)
    verdict = read_object(path).get("verdict") if path else None
    met = None if verdict is None else verdict != "fail"
    return Expectation("Preflight passes on this host (warnings allowed)", met, f"verdict {verdict or 'not run'}")


def _kv(results: Path) -> Expectation:
    comparison = read_object(results / "kv.json").get("comparison") or {}
    within = comparison.get("within_tolerance")
    return Expectation("vLLM's KV capacity within 10 % of the preflight's prediction", within,
                       str(comparison.get("detail") or "not compared"))


def _gates(steps: dict[str, dict[str, Any]]) -> list[Expectation]:
    out = []
    for students, name in class_steps(steps):
        status = step_data(steps, name).get("status")
        out.append(Expectation(f"The gate passes at {students} students", None if status is None else status == "pass",
                               f"gate {status or 'not run'}"))
    return out


def _kill(steps: dict[str, dict[str, Any]]) -> Expectation:
    what = "Engine kill: in-flight streams end in an error, then the API process exits"
    data = step_data(steps, "kill")
    if "killed" not in data:
        return Expectation(what, None, "not run")
    kinds = data.get("failures_by_kind") or {}
    met = data.get("api_exit_code") is not None and "error_after_tokens" in kinds
    failures = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
    return Expectation(what, met, f"API exit code {data.get('api_exit_code')}; failures {failures}")


def _imbalance(steps: dict[str, dict[str, Any]]) -> Expectation:
    data = step_data(steps, "probe_tp1_imbalance")
    check = balance_check(data)
    sampled = bool((data.get("figures") or {}).get("gpu_util_mean_pct"))
    # Failing without GPU samples proves nothing about balance: that is a missed expectation too.
    met = None if check is None else check.get("passed") is False and sampled
    return Expectation("The gate's balance check fails with one GPU idle (vLLM on GPU 0 only)", met,
                       str(check.get("detail")) if check else "not run")


def _matmul(results: Path) -> Expectation:
    runs = read_object(results / "matmul-balance.json").get("runs") or []
    status = {r.get("name"): r.get("status") for r in runs}
    sampled = bool(runs) and all(r.get("means") for r in runs)
    met = None if not runs else status.get("gpu0-only") == "fail" and status.get("all-gpus") == "pass" and sampled
    detail = ", ".join(f"{k}: {v}" for k, v in status.items()) or "not run"
    if runs and not sampled:
        detail += " (no GPU samples)"
    return Expectation("Balance check on a matmul load: GPU 0 only fails, every GPU passes", met, detail)


def _compile_cache(steps: dict[str, dict[str, Any]], results: Path) -> Expectation:
    main = main_engine(steps)
    first, again = (startup_of(steps, f"{step}_{main}", results) for step in ("serve", "restart"))
    caches = [s.compile_cache if s else None for s in (first, again)]
    met = None if None in caches or "n/a" in caches else caches == ["miss", "hit"]
    return Expectation("The first start compiles, the restart loads the kept compile cache", met,
                       f"first start {caches[0] or 'not run'}, restart {caches[1] or 'not run'}")


def judge(results: Path) -> tuple[list[str], list[Expectation]]:
    """Failed steps and every expectation of the run in `results`."""
    run = RunResults.load(results)
    steps = {s.name: {"status": s.status, "data": s.data} for s in run.steps}
    failed = [s.name for s in run.steps if s.status == "failed"]
    found = [_preflight(results), _kv(results), *_gates(steps), _kill(steps), _imbalance(steps), _matmul(results),
             _compile_cache(steps, results)]
    return failed, found


def verdict(results: Path) -> dict[str, Any]:
    failed, found = judge(results)
    missed = [e.what for e in found if e.met is False]
    return {"status": "pass" if not failed and not missed else "fail", "failed_steps": failed, "missed": missed,
            "expectations": [e.to_dict() for e in found]}
