"""The probe's GPU sampler and gate, judging GPU balance under a load that is not an LLM server.

Run twice: a matmul loop on GPU 0 only (the gate's balance check must fail) and on every GPU (it must
pass). Only the gate's two GPU checks are enabled, with the classroom profile's limits. Needs the
probe (classroom_probe) and torch with CUDA: the GPU host's environment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

from classroom_probe.gate import GateInputs, evaluate
from classroom_probe.gpu import GpuSampler
from classroom_probe.thresholds import PROFILES, Thresholds


def gpu_only(profile: str = "classroom") -> Thresholds:
    base = PROFILES[profile]
    return Thresholds(gpu_util_mean_min_pct=base.gpu_util_mean_min_pct,
                      gpu_util_balance_max_ratio=base.gpu_util_balance_max_ratio)


@dataclass
class BalanceRun:
    name: str
    loaded_gpus: list[int]
    source: str
    reason: str
    means: dict[int, float]
    status: str
    checks: list[dict[str, Any]]
    loads: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def _sample(gpus: list[int], seconds: float, warmup: float, env: dict[str, str], mode: str,
                  ) -> tuple[GpuSampler, int, int, list[str]]:
    sampler = GpuSampler(mode)
    await sampler.open()
    stop = asyncio.Event()
    task = asyncio.create_task(sampler.loop(stop))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "classroom_validation.matmul", "--gpu", str(g), "--seconds", str(seconds + warmup),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        for g in gpus
    ]
    await asyncio.sleep(warmup)
    start = time.perf_counter_ns()
    outs = []
    for proc in procs:
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), seconds + 120)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        outs.append(out.decode("utf-8", "replace").strip()[-500:])
    end = time.perf_counter_ns()
    stop.set()
    await task
    sampler.close()
    return sampler, start, end, outs


def judge(means: dict[int, float], reason: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The gate's verdict on GPU means alone (every other check disabled)."""
    verdict = evaluate(gpu_only(), GateInputs(successes=0, failures=0, ttft_p95_ms=None, student_tok_s_p50=None,
                                              gpu_means=means, gpu_reason=reason))
    return verdict.status, [c.to_json() for c in verdict.checks if c.name.startswith("gpu_")]


def run_balance(name: str, gpus: list[int], *, seconds: float, warmup: float, env: dict[str, str],
                mode: str = "auto") -> BalanceRun:
    sampler, start, end, outs = asyncio.run(_sample(gpus, seconds, warmup, env, mode))
    series = sampler.series
    means = series.means(start, end)
    status, checks = judge(means, series.reason)
    return BalanceRun(name, gpus, series.source, series.reason, {i: round(v, 2) for i, v in means.items()},
                      status, checks, outs)
