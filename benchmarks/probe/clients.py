"""The clients under test, each run in its own process and read back into one shape.

- `vllm`: `vllm bench serve` (random dataset, detailed results), matched to the
  truth log by the server id the first token's text carries.
- `probe`: the probe's batch mode through its Python API (probe_api_harness.py),
  which keeps every inter-chunk gap. Prompts carry tags `[tag:<i>]` and batch
  mode sends prompt i as request i, so record index i matches the server
  request tagged i.
- `probe-cli`: the probe's CLI in batch mode with `--records`, matched the same
  way; its records carry TTFT but not every gap, so it gives no ITL error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import HERE, REPO, CpuSampler, rid_from_text

_FILLER = " ".join(f"w{i}" for i in range(31))


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


@dataclass
class ClientRun:
    tool: str
    concurrency: int
    returncode: int
    wall_s: float
    requests: list[ClientRequest]
    sampler: CpuSampler
    stdout_tail: str
    extra: dict[str, object] = field(default_factory=dict)


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
    extra: dict[str, object] = {}
    if result.exists():
        data = json.loads(result.read_text())
        for i, text in enumerate(data.get("generated_texts", [])):
            err = data["errors"][i] if i < len(data.get("errors", [])) else ""
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
        extra = {k: data.get(k) for k in ("completed", "failed", "median_ttft_ms", "p95_ttft_ms", "p95_itl_ms")}
    return ClientRun("vllm", spec.concurrency, rc, wall, reqs, sampler, out, extra)


def _probe_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "probe" / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_probe_api(spec: RunSpec, tool: str = "probe") -> ClientRun:
    script = HERE / "probe_api_harness.py"
    out_path = spec.workdir / f"{tool}-c{spec.concurrency}.jsonl"
    report_dir = spec.workdir / f"{tool}-c{spec.concurrency}"
    cmd = [
        sys.executable, str(script),
        "--base-url", spec.base_url, "--model", spec.model,
        "--requests", str(spec.requests), "--concurrency", str(spec.concurrency),
        "--max-tokens", str(spec.output_len), "--time-limit", str(max(10.0, spec.timeout_s - 30)),
        "--report-dir", str(report_dir), "--out", str(out_path),
    ]  # fmt: skip
    rc, wall, sampler, out = _run(cmd, _probe_env(), spec.timeout_s, REPO, spec.nice)
    reqs: list[ClientRequest] = []
    if out_path.exists():
        for line in out_path.read_text().splitlines():
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
    return ClientRun(tool, spec.concurrency, rc, wall, reqs, sampler, out, _report_extra(report_dir))


def write_tagged_prompts(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(count):
            fh.write(json.dumps({"prompt": f"[tag:{i}] {_FILLER}"}) + "\n")


def run_probe_cli(spec: RunSpec) -> ClientRun:
    prompts = spec.workdir / f"prompts-{spec.requests}.jsonl"
    write_tagged_prompts(prompts, spec.requests)
    report_dir = spec.workdir / f"probe-cli-c{spec.concurrency}"
    cmd = [
        sys.executable, "-m", "classroom_probe", "run",
        "--base-url", spec.base_url, "--api", "completions", "--model", spec.model,
        "--mode", "batch", "--requests", str(spec.requests), "--concurrency", str(spec.concurrency),
        "--max-tokens", str(spec.output_len), "--ignore-eos", "--prompts", str(prompts),
        "--warmup", "0", "--profile", "lab", "--metrics-url", "off", "--gpu", "off",
        "--report-dir", str(report_dir), "--records", "--quiet",
    ]  # fmt: skip
    rc, wall, sampler, out = _run(cmd, _probe_env(), spec.timeout_s, REPO, spec.nice)
    reqs: list[ClientRequest] = []
    records = report_dir / "records.jsonl"
    if records.exists():
        for line in records.read_text().splitlines():
            r = json.loads(line)
            ok = bool(r.get("ok")) and r.get("ttft_ms") is not None
            itl = r.get("itl_ms")
            reqs.append(
                ClientRequest(
                    rid=None,
                    tag=str(r["index"]),
                    ok=ok,
                    ttft_s=r["ttft_ms"] / 1000.0 if ok else None,
                    itls_s=[g / 1000.0 for g in itl] if ok and isinstance(itl, list) else None,
                    error=str(r.get("failure") or ""),
                    start_order=r.get("start_s"),
                )
            )
    return ClientRun("probe-cli", spec.concurrency, rc, wall, reqs, sampler, out, _report_extra(report_dir))


def _report_extra(report_dir: Path) -> dict[str, object]:
    """The probe's view of itself (event-loop lag, CPU) and its verdict, from its report.json."""
    path = report_dir / "report.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    health = report.get("probe_health") or {}
    lag = health.get("loop_lag_ms") or {}
    verdict = report.get("verdict") or {}
    return {
        "probe_loop_lag_ms": {k: lag.get(k) for k in ("p50", "p95", "p99", "max")},
        "probe_cpu_s": health.get("cpu_s"),
        "probe_wall_s": health.get("wall_s"),
        "probe_cpu_us_per_output_token": health.get("cpu_us_per_output_token"),
        "probe_ttft_p95_ms": (report.get("aggregates", {}).get("latency_ms", {}).get("ttft") or {}).get("p95"),
        "verdict": verdict.get("status"),
    }
