"""Runs the project's probe CLI (`python -m classroom_probe run`) and reduces its report to key figures."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwval.results import read_json


@dataclass(frozen=True)
class ProbeLoad:
    """One probe invocation; `args()` is the exact CLI, recorded in the results."""

    name: str
    mode: str  # classroom | batch
    max_tokens: int
    students: int = 24
    duration: float = 60.0
    warmup: float = 10.0
    requests: int = 0
    concurrency: int = 0
    profile: str = "classroom"
    ignore_eos: bool = True
    extra: tuple[str, ...] = ()

    def args(self, base_url: str, model: str, report_dir: Path) -> list[str]:
        out = ["run", "--base-url", base_url, "--api", "chat", "--model", model, "--mode", self.mode,
               "--max-tokens", str(self.max_tokens), "--profile", self.profile, "--metrics-url", "auto",
               "--gpu", "nvml", "--report-dir", str(report_dir), "--quiet"]
        if self.mode == "classroom":
            out += ["--students", str(self.students), "--duration", str(self.duration), "--warmup", str(self.warmup)]
        else:
            out += ["--requests", str(self.requests), "--concurrency", str(self.concurrency),
                    "--duration", str(self.duration)]
        if self.ignore_eos:
            out.append("--ignore-eos")
        return out + list(self.extra)


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
    """The figures the summary table shows, taken from a probe report.json."""
    agg = report.get("aggregates") or {}
    lat = agg.get("latency_ms") or {}
    ttft = lat.get("ttft") or {}
    tpot = lat.get("tpot") or {}
    student = agg.get("student_output_tok_s") or {}
    gpus = (report.get("gpu") or {}).get("gpus") or []
    server = report.get("server") or {}
    return {
        "requests_total": agg.get("requests_total"),
        "requests_ok": agg.get("requests_ok"),
        "failures_total": (report.get("failures") or {}).get("total"),
        "failures_by_kind": (report.get("failures") or {}).get("by_kind", {}),
        "output_tok_s": agg.get("output_tok_s"),
        "requests_per_s": agg.get("requests_per_s"),
        "ttft_p50_ms": ttft.get("p50"),
        "ttft_p95_ms": ttft.get("p95"),
        "tpot_p50_ms": tpot.get("p50"),
        "student_output_tok_s_p50": student.get("p50"),
        "gpu_source": (report.get("gpu") or {}).get("source"),
        "gpu_util_mean_pct": {str(g.get("index")): g.get("util_mean_pct_window") for g in gpus},
        "metrics_scraped": server.get("available"),
        "token_cross_check": (server.get("cross_check") or {}).get("detail"),
        "loop_lag_p99_ms": ((report.get("probe_health") or {}).get("loop_lag_ms") or {}).get("p99"),
    }


def outcome_from(name: str, command: list[str], report_dir: Path, *, exit_code: int | None, stdout: str,
                 stderr: str) -> ProbeOutcome:
    status = {0: "pass", 1: "fail", 3: "inconclusive"}.get(exit_code if exit_code is not None else -1, "error")
    checks: list[dict[str, Any]] = []
    for line in reversed(stdout.strip().splitlines()):
        try:
            quiet = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(quiet, dict) and "status" in quiet:
            checks = list(quiet.get("checks") or [])
            break
    figures: dict[str, Any] = {}
    report_path = report_dir / "report.json"
    if report_path.is_file():
        report = read_json(report_path)
        figures = key_figures(report)
        checks = checks or list((report.get("verdict") or {}).get("checks") or [])
    return ProbeOutcome(name, exit_code, status, str(report_dir), command, figures, checks, stderr[-2000:])


def start_probe(python: str, load: ProbeLoad, base_url: str, *, model: str, report_dir: Path,
                env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    command = [python, "-m", "classroom_probe", *load.args(base_url, model, report_dir)]
    report_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    return proc, command


def finish_probe(name: str, proc: subprocess.Popen[str], command: list[str], *, report_dir: Path,
                 timeout: float) -> ProbeOutcome:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[hwval] probe killed after {timeout:.0f} s"
        return outcome_from(name, command, report_dir, exit_code=None, stdout=out, stderr=err)
    return outcome_from(name, command, report_dir, exit_code=proc.returncode, stdout=out, stderr=err)


def run_probe(python: str, load: ProbeLoad, base_url: str, *, model: str, report_dir: Path, env: dict[str, str],
              timeout: float) -> ProbeOutcome:
    proc, command = start_probe(python, load, base_url, model=model, report_dir=report_dir, env=env)
    return finish_probe(load.name, proc, command, report_dir=report_dir, timeout=timeout)


def check(outcome: ProbeOutcome | dict[str, Any], name: str) -> dict[str, Any] | None:
    checks = outcome.checks if isinstance(outcome, ProbeOutcome) else outcome.get("checks") or []
    return next((c for c in checks if c.get("name") == name), None)
