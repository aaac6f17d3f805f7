"""The clients under test, each run in its own process and read back into one shape.

- `vllm`: `vllm bench serve` (random dataset, detailed results), matched to the
  truth log by the server id the first token's text carries.
- `probe`: the probe's batch mode through its Python API (probe_api_harness.py),
  which keeps every inter-chunk gap. Prompts carry tags `[tag:<i>]` and batch
  mode sends prompt i as request i, so record index i matches the server
  request tagged i.
- `probe-cli`: the probe's command line, `run --config <run file>`, matched the
  same way; its records carry TTFT but not every gap, so it gives no ITL error.

Both probe clients are set up the same way: the benchmark builds the probe's own
`Config` (validated here, before anything starts) and writes it as a run file;
the client process reads that file. One load process (`workers=1`): these are
single-event-loop figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bench_common import HERE, REPO, CpuSampler, probe_env, rid_from_text, write_text
from classroom_probe.config import Config

if TYPE_CHECKING:
    from classroom_probe.report import Report

_FILLER = " ".join(f"w{i}" for i in range(31))
PROBE_WORKERS = 1


@dataclass
class ClientRequest:
    """One request as a client measured it. Keys: the server rid, or the prompt tag."""

    rid: int | None
    tag: str | None
    ok: bool
    ttft_s: float | None
    itls_s: list[float] | None
    start_abs_s: float | None = None
    error: str = ""
    # Sorts requests by start when no absolute start time is known (the CLI's records).
    start_order: float | None = None

    @property
    def order(self) -> float:
        if self.start_abs_s is not None:
            return self.start_abs_s
        return self.start_order if self.start_order is not None else 0.0


@dataclass(frozen=True)
class RunSpec:
    """One client run: where, how much, how long."""

    base_url: str
    model: str
    requests: int
    concurrency: int
    output_len: int
    workdir: Path
    timeout_s: float
    # Niceness for the client process (negative: ahead of other work on a shared machine).
    nice: int = 0


@dataclass(frozen=True)
class ProbeSelf:
    """The probe's view of itself, from its report.json."""

    verdict: str
    workers: int
    lag_source: str
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float
    cpu_s: float
    cpu_us_per_output_token: float | None
    ttft_p95_ms: float | None


@dataclass
class ClientRun:
    tool: str
    concurrency: int
    returncode: int
    wall_s: float
    requests: list[ClientRequest]
    sampler: CpuSampler
    stdout_tail: str
    probe: ProbeSelf | None = None
    run_file: dict[str, object] | None = None


def _run(
    cmd: list[str], env: dict[str, str] | None, timeout_s: float, cwd: Path, nice: int = 0
) -> tuple[int, float, CpuSampler, str]:
    if nice:
        # nice(1) execs the command in place, so the pid sampled below is the client's own.
        cmd = ["nice", "-n", str(nice), *cmd]
    t0 = time.monotonic()
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        sampler = CpuSampler(proc.pid).start()
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
            out += f"\n[killed after {timeout_s} s]"
        sampler.stop()
        return proc.returncode, time.monotonic() - t0, sampler, out[-4000:]


def run_vllm_bench(spec: RunSpec, venv: Path) -> ClientRun:
    result = spec.workdir / f"vllm-c{spec.concurrency}.json"
    result.unlink(missing_ok=True)  # a redone sweep must not read the discarded attempt's file
    cmd = [
        str(venv / "bin" / "python"),
        str(HERE / "vllm_bench_launcher.py"),
        "--backend", "vllm",
        "--base-url", spec.base_url,
        "--model", spec.model,
        "--tokenizer", str(REPO / "files" / "models" / "classroom-tiny"),
        "--dataset-name", "random",
        "--random-input-len", "32",
        "--random-output-len", str(spec.output_len),
        "--ignore-eos",
        "--num-prompts", str(spec.requests),
        "--max-concurrency", str(spec.concurrency),
        "--save-result", "--save-detailed",
        "--result-dir", str(spec.workdir),
        "--result-filename", result.name,
        "--disable-tqdm",
        "--percentile-metrics", "ttft,itl",
        "--metric-percentiles", "50,95",
    ]  # fmt: skip
    rc, wall, sampler, out = _run(cmd, None, spec.timeout_s, REPO, spec.nice)
    reqs: list[ClientRequest] = []
    if result.exists():
        data = json.loads(result.read_text(encoding="utf-8"))
        errors = data.get("errors", [])
        for i, text in enumerate(data.get("generated_texts", [])):
            err = errors[i] if i < len(errors) else ""
            ok = not err and data["output_lens"][i] > 0
            reqs.append(
                ClientRequest(
                    rid=rid_from_text(text or ""),
                    tag=None,
                    ok=ok,
                    ttft_s=data["ttfts"][i] if ok else None,
                    itls_s=list(data["itls"][i]) if ok else None,
                    start_abs_s=data["start_times"][i],
                    error=err[-200:] if err else "",
                )
            )
    return ClientRun("vllm", spec.concurrency, rc, wall, reqs, sampler, out)


def write_tagged_prompts(path: Path, count: int) -> None:
    """Prompt i carries `[tag:i]`, which the truth server logs; batch mode sends prompt i as request i."""
    write_text(path, "".join(json.dumps({"prompt": f"[tag:{i}] {_FILLER}"}) + "\n" for i in range(count)))


def probe_config(spec: RunSpec, report_dir: Path, prompts: Path, *, records: bool) -> Config:
    """The probe's settings for one accuracy run, validated (BadInput names the setting if one is wrong)."""
    config = Config(
        base_url=spec.base_url,
        model=spec.model,
        max_tokens=spec.output_len,
        report_dir=report_dir,
        api="completions",
        mode="batch",
        requests=spec.requests,
        concurrency=spec.concurrency,
        workers=PROBE_WORKERS,
        warmup=0.0,
        ignore_eos=True,
        prompts_file=prompts,
        profile="lab",
        metrics_url="off",
        gpu="off",
        records=records,
        quiet=True,
        # The probe's own time cap, inside the benchmark's limit for the whole client process.
        duration=max(10.0, spec.timeout_s - 30),
    )
    config.validate()
    return config


def _prepare_probe(spec: RunSpec, tool: str, *, records: bool) -> tuple[Path, Path, dict[str, object]]:
    """Prompts, run file and a clean report folder for one probe run; returns (run file, report dir, settings)."""
    prompts = spec.workdir / f"prompts-{spec.requests}.jsonl"
    write_tagged_prompts(prompts, spec.requests)
    report_dir = spec.workdir / f"{tool}-c{spec.concurrency}"
    for old in ("report.json", "records.jsonl"):
        (report_dir / old).unlink(missing_ok=True)
    settings = probe_config(spec, report_dir, prompts, records=records).to_runfile()
    run_file = spec.workdir / f"{tool}-c{spec.concurrency}.run.json"
    write_text(run_file, json.dumps(settings, indent=1) + "\n")
    return run_file, report_dir, settings


def run_probe_api(spec: RunSpec) -> ClientRun:
    run_file, report_dir, settings = _prepare_probe(spec, "probe", records=False)
    out_path = spec.workdir / f"probe-c{spec.concurrency}.raw.jsonl"
    out_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "probe_api_harness.py"), "--config", str(run_file), "--out", str(out_path)]
    rc, wall, sampler, out = _run(cmd, probe_env(), spec.timeout_s, REPO, spec.nice)
    reqs: list[ClientRequest] = []
    if out_path.exists():
        for line in out_path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            ok = r["failure"] is None and r["first_token_ns"] is not None
            reqs.append(
                ClientRequest(
                    rid=None,
                    tag=r["tag"],
                    ok=ok,
                    ttft_s=(r["first_token_ns"] - r["start_ns"]) / 1e9 if ok else None,
                    itls_s=[g / 1e9 for g in r["gaps_ns"]] if ok else None,
                    start_abs_s=r["start_ns"] / 1e9,
                    error=r["failure"] or "",
                )
            )
    return ClientRun("probe", spec.concurrency, rc, wall, reqs, sampler, out, probe_self(report_dir), settings)


def run_probe_cli(spec: RunSpec) -> ClientRun:
    run_file, report_dir, settings = _prepare_probe(spec, "probe-cli", records=True)
    cmd = [sys.executable, "-m", "classroom_probe", "run", "--config", str(run_file)]
    rc, wall, sampler, out = _run(cmd, probe_env(), spec.timeout_s, REPO, spec.nice)
    reqs: list[ClientRequest] = []
    records = report_dir / "records.jsonl"
    if records.exists():
        for line in records.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            ok = bool(r.get("ok")) and r.get("ttft_ms") is not None
            reqs.append(
                ClientRequest(
                    rid=None,
                    tag=str(r["index"]),
                    ok=ok,
                    ttft_s=r["ttft_ms"] / 1000.0 if ok else None,
                    itls_s=None,
                    error=str(r.get("failure") or ""),
                    start_order=r.get("start_s"),
                )
            )
    return ClientRun("probe-cli", spec.concurrency, rc, wall, reqs, sampler, out, probe_self(report_dir), settings)


def read_report(report_dir: Path) -> Report | None:
    path = report_dir / "report.json"
    if not path.exists():
        return None
    return cast("Report", json.loads(path.read_text(encoding="utf-8")))


def probe_self(report_dir: Path) -> ProbeSelf | None:
    """The probe's event-loop lag, CPU and verdict, from its report."""
    report = read_report(report_dir)
    if report is None:
        return None
    health = report["probe_health"]
    lag = health["loop_lag_ms"]
    return ProbeSelf(
        verdict=report["verdict"]["status"],
        workers=report["load"]["workers"],
        lag_source=health["source"],
        loop_lag_p50_ms=lag["p50"],
        loop_lag_p99_ms=health["gate_lag_p99_ms"],
        loop_lag_max_ms=lag["max"],
        cpu_s=health["cpu_s"],
        cpu_us_per_output_token=health["cpu_us_per_output_token"],
        ttft_p95_ms=report["aggregates"]["latency_ms"]["ttft"]["p95"],
    )
