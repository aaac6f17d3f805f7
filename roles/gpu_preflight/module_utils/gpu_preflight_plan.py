"""Memory plan for one vLLM instance: weights, KV cache and how many sequences fit.

An estimate, modelled on vLLM's V1 KV-cache manager:
- KV bytes per token per layer = 2 x kv_heads_per_gpu x head_dim x dtype bytes, with
  kv_heads_per_gpu = max(1, kv_heads / TP);
- with sliding-window and full-attention layers mixed (Gemma 3), the hybrid manager groups
  layers in groups of the smaller layer count (padding the last group) and shares one block
  pool; a request needs max_model_len tokens in each full group but only about
  window - 1 + max_num_batched_tokens tokens (plus one block) in each sliding group;
- vLLM 0.26 logs ``GPU KV cache size`` as if every (padded) layer were full attention: the
  plan reproduces that figure too, so the log line on a real box can be compared with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ansible.module_utils.gpu_preflight_model import ModelShape, layers_per_stage

GIB = 1024**3
MIB = 1024**2
BLOCK_SIZE = 16
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1}
# vLLM's defaults depend on the GPU: larger batches on cards with 70 GiB or more.
LARGE_GPU_MIB = 70 * 1024
DEFAULT_BATCHED_TOKENS = {False: 2048, True: 8192}
DEFAULT_MAX_NUM_SEQS = {False: 256, True: 1024}


@dataclass(frozen=True)
class PlanInputs:
    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    dtype: str  # resolved: bfloat16, float16 or float32
    kv_cache_dtype: str  # auto or fp8
    gpu_total_mib: int
    held_by_others_mib: int
    gpu_memory_utilization: float
    max_model_len: int
    students: int
    max_num_batched_tokens: int  # 0: vLLM's default for this GPU
    max_num_seqs: int  # 0: vLLM's default for this GPU
    activation_reserve_gib: float


@dataclass(frozen=True)
class MemoryPlan:
    dtype: str
    weights_gib_per_gpu: float
    budget_gib_per_gpu: float
    reserve_gib_per_gpu: float
    kv_available_gib_per_gpu: float
    kv_bytes_per_token_per_layer: int
    layer_groups: int
    layers_per_group: int
    max_num_batched_tokens: int
    max_num_seqs: int
    sliding_tokens_per_sequence: int | None
    blocks_per_sequence: int
    blocks_available: int
    predicted_max_sequences: int
    predicted_concurrent_sequences: int
    students: int
    fits: bool
    vllm_log_kv_tokens: int
    vllm_log_max_concurrency: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_batched_tokens(requested: int, gpu_total_mib: int) -> int:
    return requested or DEFAULT_BATCHED_TOKENS[gpu_total_mib >= LARGE_GPU_MIB]


def effective_max_num_seqs(requested: int, gpu_total_mib: int) -> int:
    return requested or DEFAULT_MAX_NUM_SEQS[gpu_total_mib >= LARGE_GPU_MIB]


def _layer_groups(full: int, sliding: int) -> tuple[int, int, int]:
    """(full groups, sliding groups, layers per group) as the hybrid manager pads them."""
    if full and sliding:
        size = min(full, sliding)
        return math.ceil(full / size), math.ceil(sliding / size), size
    if sliding:
        return 0, 1, sliding
    return 1, 0, full


def plan_memory(shape: ModelShape, inputs: PlanInputs) -> MemoryPlan:
    tp, pp = inputs.tensor_parallel_size, inputs.pipeline_parallel_size
    weight_bytes = DTYPE_BYTES[inputs.dtype]
    kv_bytes = weight_bytes if inputs.kv_cache_dtype == "auto" else DTYPE_BYTES[inputs.kv_cache_dtype]
    weights_gib = shape.num_parameters * weight_bytes / GIB / (tp * pp)

    usable_mib = min(
        inputs.gpu_memory_utilization * inputs.gpu_total_mib, inputs.gpu_total_mib - inputs.held_by_others_mib
    )
    budget_gib = max(usable_mib, 0) * MIB / GIB
    kv_available_gib = budget_gib - weights_gib - inputs.activation_reserve_gib

    per_layer_token = 2 * max(1, shape.num_key_value_heads // tp) * shape.head_dim * kv_bytes
    full_groups, sliding_groups, group_size = _layer_groups(
        layers_per_stage(shape.num_full_layers, pp) if shape.num_full_layers else 0,
        layers_per_stage(shape.num_sliding_layers, pp) if shape.num_sliding_layers else 0,
    )
    page_bytes = group_size * BLOCK_SIZE * per_layer_token
    batched = effective_batched_tokens(inputs.max_num_batched_tokens, inputs.gpu_total_mib)
    max_seqs = effective_max_num_seqs(inputs.max_num_seqs, inputs.gpu_total_mib)

    full_blocks = math.ceil(inputs.max_model_len / BLOCK_SIZE)
    sliding_tokens = None
    per_sequence = full_groups * full_blocks
    if sliding_groups and shape.sliding_window:
        sliding_tokens = min(shape.sliding_window - 1 + batched, inputs.max_model_len)
        per_sequence += sliding_groups * (math.ceil(sliding_tokens / BLOCK_SIZE) + 1)

    blocks = max(0, math.floor(kv_available_gib * GIB / page_bytes))
    per_replica = blocks // per_sequence if per_sequence else 0
    predicted = per_replica * inputs.data_parallel_size
    concurrent = min(per_replica, max_seqs) * inputs.data_parallel_size
    groups = full_groups + sliding_groups
    log_tokens = (blocks // groups) * BLOCK_SIZE if groups else 0
    return MemoryPlan(
        dtype=inputs.dtype,
        weights_gib_per_gpu=round(weights_gib, 2),
        budget_gib_per_gpu=round(budget_gib, 2),
        reserve_gib_per_gpu=inputs.activation_reserve_gib,
        kv_available_gib_per_gpu=round(kv_available_gib, 2),
        kv_bytes_per_token_per_layer=per_layer_token,
        layer_groups=groups,
        layers_per_group=group_size,
        max_num_batched_tokens=batched,
        max_num_seqs=max_seqs,
        sliding_tokens_per_sequence=sliding_tokens,
        blocks_per_sequence=per_sequence,
        blocks_available=blocks,
        predicted_max_sequences=predicted,
        predicted_concurrent_sequences=concurrent,
        students=inputs.students,
        fits=kv_available_gib > 0 and predicted >= inputs.students,
        vllm_log_kv_tokens=log_tokens,
        vllm_log_max_concurrency=round(log_tokens / inputs.max_model_len, 2),
    )
