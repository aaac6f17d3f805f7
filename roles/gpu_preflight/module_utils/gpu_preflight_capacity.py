"""Capacity estimate: the largest class the planned layout serves within the classroom SLO.

An estimate, not a measurement (``playbooks/topology.yml`` measures it). Three limits, the
smallest wins:

- **sequences**: requests a replica holds at once, min(KV-cache sequences of the memory plan,
  max_num_seqs), times the data-parallel size;
- **answer speed**: a decode step of a replica reads its share of the weights and each running
  sequence's KV cache from GPU memory and does 2 x parameters FLOPs per sequence:
  step(b) = weights / (TP x bandwidth) + b x (KV bytes + FLOPs / TP) + communication, where the
  communication is two all-reduces per layer for TP > 1 and one hand-over per stage for PP > 1.
  With PP the replica's sequences are split into PP micro-batches that take turns on the stages,
  so a token of one sequence costs the whole model's weights once and 1/PP of the batch's KV;
  a student is served fast enough while 1 / step(b) >= the SLO's tok/s;
- **first token**: the prompt's prefill (FLOPs over the replica's GPUs) plus one decode step of
  the batch, against the SLO's TTFT.

Students are not all waiting at once: each asks, reads the answer and thinks, so the share of
students with a request in flight is answer time / (answer time + think time).
Bandwidth and FLOPs come from the GPU maker's data sheets (table below), derated by
``EFFICIENCY``; a GPU not in the table gives no estimate rather than a guess.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ansible.module_utils.gpu_preflight_model import ModelShape

# Data-sheet memory bandwidth (GB/s) and dense bf16 tensor TFLOPs, matched by a substring of
# nvidia-smi's name, longest match first.
GPU_SPECS: dict[str, tuple[float, float]] = {
    "H200": (4800.0, 989.0),
    "H100 PCIe": (2000.0, 756.0),
    "H100 NVL": (3900.0, 835.0),
    "H100": (3350.0, 989.0),
    "A100-SXM4-80GB": (2039.0, 312.0),
    "A100 80GB PCIe": (1935.0, 312.0),
    "A100": (1555.0, 312.0),
    "RTX 6000 Ada": (960.0, 364.0),
    "L40S": (864.0, 362.0),
    "L40": (864.0, 181.0),
    "L4": (300.0, 121.0),
    "A10": (600.0, 125.0),
    "RTX A6000": (768.0, 155.0),
    "Tesla T4": (320.0, 65.0),
}
# Share of the data-sheet figure a decode step reaches (memory) and a prefill reaches (compute).
EFFICIENCY = {"bandwidth": 0.6, "flops": 0.4}
# One all-reduce of a decode step's activations: NVLink, PCIe with peer-to-peer, PCIe through host memory.
ALLREDUCE_S = {"nvlink": 10e-6, "pcie": 30e-6, "host": 60e-6}
MAX_CLASS = 100_000


@dataclass(frozen=True)
class CapacityInputs:
    gpu_name: str
    link: str  # nvlink, pcie or host
    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    weight_bytes: int  # bytes per parameter
    kv_bytes_per_token_per_layer: int  # per GPU, from the memory plan
    sequences_per_replica: int  # min(KV sequences, max_num_seqs) for one replica
    prompt_tokens: int
    answer_tokens: int
    think_seconds: float
    slo_ttft_ms: float
    slo_student_tok_s: float


@dataclass(frozen=True)
class CapacityEstimate:
    estimate: bool
    largest_class: int | None
    limited_by: str
    note: str
    sequences_limit: int
    speed_limit_in_flight: int | None
    single_student_tok_s: float | None
    step_ms_at_limit: float | None
    ttft_ms_at_limit: float | None
    bandwidth_gb_s: float | None
    tflops: float | None
    assumptions: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_spec(name: str) -> tuple[float, float] | None:
    for key in sorted(GPU_SPECS, key=len, reverse=True):
        if key.lower() in name.lower():
            return GPU_SPECS[key]
    return None


def _step_seconds(shape: ModelShape, i: CapacityInputs, in_flight_per_replica: float, bw: float, flops: float) -> float:
    tp, pp = i.tensor_parallel_size, i.pipeline_parallel_size
    weights = shape.num_parameters * i.weight_bytes / tp / bw
    context = i.prompt_tokens + i.answer_tokens / 2
    kv_per_seq = context * i.kv_bytes_per_token_per_layer * shape.num_hidden_layers / bw
    flops_per_seq = 2 * shape.num_parameters / tp / flops
    comm = (2 * shape.num_hidden_layers * ALLREDUCE_S.get(i.link, ALLREDUCE_S["pcie"]) if tp > 1 else 0.0) + (
        (pp - 1) * ALLREDUCE_S.get(i.link, ALLREDUCE_S["pcie"]) if pp > 1 else 0.0
    )
    return float(weights + in_flight_per_replica / pp * (kv_per_seq + flops_per_seq) + comm)


def _in_flight(students: int, step_s: float, i: CapacityInputs) -> float:
    answer_s = i.answer_tokens * step_s
    return students * answer_s / (answer_s + i.think_seconds) if answer_s + i.think_seconds > 0 else float(students)


def estimate_capacity(shape: ModelShape, i: CapacityInputs) -> CapacityEstimate:
    assumptions = {
        "prompt_tokens": i.prompt_tokens,
        "answer_tokens": i.answer_tokens,
        "think_seconds": i.think_seconds,
        "slo_ttft_p95_ms": i.slo_ttft_ms,
        "slo_student_tok_s": i.slo_student_tok_s,
        "efficiency": EFFICIENCY,
        "link": i.link,
    }
    sequences = i.sequences_per_replica * i.data_parallel_size
    spec = gpu_spec(i.gpu_name)
    if spec is None:
        return CapacityEstimate(
            True,
            None,
            "unknown GPU",
            f"no data-sheet figures for {i.gpu_name!r}: no throughput estimate",
            sequences,
            None,
            None,
            None,
            None,
            None,
            None,
            assumptions,
        )
    bw = spec[0] * 1e9 * EFFICIENCY["bandwidth"]
    flops = spec[1] * 1e12 * EFFICIENCY["flops"]
    gpus = i.tensor_parallel_size * i.pipeline_parallel_size

    def step(students: int) -> float:
        # The in-flight share depends on the step time it sets: a few fixed-point rounds settle it.
        per_replica = students / i.data_parallel_size
        s = _step_seconds(shape, i, min(per_replica, i.sequences_per_replica), bw, flops)
        for _ in range(8):
            per_replica = min(_in_flight(students, s, i) / i.data_parallel_size, i.sequences_per_replica)
            s = _step_seconds(shape, i, per_replica, bw, flops)
        return s

    def ttft(students: int) -> float:
        return float(2 * shape.num_parameters * i.prompt_tokens / (gpus * flops)) + step(students)

    def limit(students: int) -> str:
        s = step(students)
        if _in_flight(students, s, i) > sequences:
            return "sequences (KV cache and max_num_seqs)"
        if 1 / s < i.slo_student_tok_s:
            return "answer speed"
        if ttft(students) * 1000 > i.slo_ttft_ms:
            return "time to first token"
        return ""

    if limit(1):
        return CapacityEstimate(
            True,
            0,
            limit(1),
            "even one student misses the SLO in this model",
            sequences,
            None,
            round(1 / step(1), 1),
            round(step(1) * 1000, 2),
            round(ttft(1) * 1000, 1),
            spec[0],
            spec[1],
            assumptions,
        )
    lo, hi = 1, MAX_CLASS
    if not limit(hi):
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if not limit(mid) else (lo, mid)
    by = limit(lo + 1) if lo < MAX_CLASS else f"the estimate's ceiling ({MAX_CLASS})"
    return CapacityEstimate(
        estimate=True,
        largest_class=lo,
        limited_by=by,
        note="estimate from the memory plan, max_num_seqs and a bandwidth model; measure with playbooks/topology.yml",
        sequences_limit=sequences,
        speed_limit_in_flight=math.floor(_in_flight(lo, step(lo), i)),
        single_student_tok_s=round(1 / step(1), 1),
        step_ms_at_limit=round(step(lo) * 1000, 3),
        ttft_ms_at_limit=round(ttft(lo) * 1000, 1),
        bandwidth_gb_s=spec[0],
        tflops=spec[1],
        assumptions=assumptions,
    )
