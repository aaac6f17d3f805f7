"""The concurrency probe, as the validation uses it: reports of the concurrency_probe role's runs, and the
one probe run the role cannot make (the load across the engine-kill test).

`probe_command` is the only place that knows how the probe is invoked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classroom_validation.results import read_object

REPORT_FILES = ("report.json", "report.md", "report.html")
# The folder name of one concurrency_probe role run (its tasks/run.yml).
ROLE_STAMP = "%Y%m%dT%H%M%SZ"
# The probe's exit codes: 0 pass, 1 fail, 2 bad input, 3 inconclusive.
EXIT_STATUS = {0: "pass", 1: "fail", 3: "inconclusive"}


@dataclass(frozen=True)
class ProbeLoad:
    """One probe run; `probe_command` turns it into the probe's command line, recorded in the results."""

    name: str
    mode: str  # classroom | batch
    max_tokens: int
    students: int = 24
    duration: float = 60.0
    warmup: float = 10.0
    requests: int = 0
    concurrency: int = 0
    profile: str = "classroom"
    gpu: str = "auto"
    ignore_eos: bool = True


def probe_command(python: str, load: ProbeLoad, base_url: str, model: str, report_dir: Path) -> list[str]:
    """The probe CLI of today (`python -m classroom_probe run ...`) for one load."""
    out = [python, "-m", "classroom_probe", "run", "--base-url", base_url, "--api", "chat", "--model", model,
           "--mode", load.mode, "--max-tokens", str(load.max_tokens), "--profile", load.profile,
           "--metrics-url", "auto", "--gpu", load.gpu, "--report-dir", str(report_dir), "--quiet"]
    if load.mode == "classroom":
        out += ["--students", str(load.students), "--duration", str(load.duration), "--warmup", str(load.warmup)]
    else:
        out += ["--requests", str(load.requests), "--concurrency", str(load.concurrency),
                "--duration", str(load.duration)]
    if load.ignore_eos:
        out.append("--ignore-eos")
    return out


@dataclass
class ProbeOutcome:
    name: str
    exit_code: int | None
    status: str  # pass | fail | inconclusive | error
    report_dir: str
    command: list[str]
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def key_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the summary shows, taken from a probe report.json."""
    agg = report.get("aggregates") or {}
    lat = agg.get("latency_ms") or {}
    ttft = lat.get("ttft") or {}
    tpot = lat.get("tpot") or {}
    student = agg.get("student_output_tok_s") or {}
    gpu = report.get("gpu") or {}
    server = report.get("server") or {}
    failures = report.get("failures") or {}
    return {
        "requests_total": agg.get("requests_total"),
        "requests_ok": agg.get("requests_ok"),
        "failures_total": failures.get("total"),
        "failures_by_kind": failures.get("by_kind", {}),
        "output_tok_s": agg.get("output_tok_s"),
        "requests_per_s": agg.get("requests_per_s"),
        "ttft_p50_ms": ttft.get("p50"),
        "ttft_p95_ms": ttft.get("p95"),
        "tpot_p50_ms": tpot.get("p50"),
        "student_output_tok_s_p50": student.get("p50"),
        "gpu_source": gpu.get("source"),
        "gpu_util_mean_pct": {str(g.get("index")): g.get("util_mean_pct_window") for g in gpu.get("gpus") or []},
        "metrics_scraped": server.get("available"),
        "token_cross_check": (server.get("cross_check") or {}).get("detail"),
        "loop_lag_p99_ms": ((report.get("probe_health") or {}).get("loop_lag_ms") or {}).get("p99"),
    }


def outcome_from(name: str, command: list[str], report_dir: Path, *, exit_code: int | None, stdout: str,
                 stderr: str) -> ProbeOutcome:
    status = EXIT_STATUS.get(exit_code if exit_code is not None else -1, "error")
    checks: list[dict[str, Any]] = []
    for line in reversed(stdout.strip().splitlines()):
        try:
            quiet = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(quiet, dict) and "status" in quiet:
            checks = list(quiet.get("checks") or [])
            break
    report = read_object(report_dir / "report.json")
    figures = key_figures(report) if report else {}
    checks = checks or list((report.get("verdict") or {}).get("checks") or [])
    return ProbeOutcome(name, exit_code, status, str(report_dir), command, figures, checks, stderr[-2000:])


def start_probe(command: list[str], report_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    report_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)


def finish_probe(name: str, proc: subprocess.Popen[str], command: list[str], *, report_dir: Path,
                 timeout: float) -> ProbeOutcome:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return outcome_from(name, command, report_dir, exit_code=None, stdout=out,
                            stderr=err + f"\nprobe killed after {timeout:.0f} s")
    return outcome_from(name, command, report_dir, exit_code=proc.returncode, stdout=out, stderr=err)


def latest_run(runs_dir: Path, since: str) -> Path | None:
    """The newest run the concurrency_probe role wrote under `runs_dir` (<UTC stamp>/report.json) at or after
    `since` (an ISO time): a run that wrote nothing never borrows an earlier run's report."""
    floor = datetime.fromisoformat(since).astimezone(UTC).strftime(ROLE_STAMP)
    stamps = sorted(p.parent for p in runs_dir.glob("*/report.json") if p.parent.name >= floor)
    return stamps[-1] if stamps else None


def outcome_from_role(name: str, runs_dir: Path, report_dir: Path, since: str) -> ProbeOutcome | None:
    """A concurrency_probe role run, its report files copied to `report_dir`; None when it wrote none."""
    run = latest_run(runs_dir, since)
    if run is None:
        return None
    report_dir.mkdir(parents=True, exist_ok=True)
    for file in REPORT_FILES:
        if (run / file).is_file():
            shutil.copy2(run / file, report_dir / file)
    report = read_object(report_dir / "report.json")
    verdict = report.get("verdict") or {}
    status = str(verdict.get("status") or "error")
    code = {v: k for k, v in EXIT_STATUS.items()}.get(status)
    return ProbeOutcome(name, code, status, str(report_dir), ["concurrency_probe role", str(run)],
                        key_figures(report), list(verdict.get("checks") or []))


def check(outcome: ProbeOutcome | dict[str, Any], name: str) -> dict[str, Any] | None:
    checks = outcome.checks if isinstance(outcome, ProbeOutcome) else outcome.get("checks") or []
    return next((c for c in checks if c.get("name") == name), None)
