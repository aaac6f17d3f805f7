"""Compares the preflight's KV-capacity prediction with what vLLM logged at start-up."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from classroom_validation.kvlog import KvLog

TOLERANCE = 0.10


@dataclass(frozen=True)
class KvComparison:
    predicted_tokens: int | None
    logged_tokens: int | None
    tokens_ratio: float | None  # logged / predicted
    predicted_concurrency: float | None
    logged_concurrency: float | None
    concurrency_ratio: float | None
    predicted_max_sequences: int | None
    predicted_kv_gib_per_gpu: float | None
    logged_kv_gib_per_gpu: list[float]
    within_tolerance: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(logged: float | None, predicted: float | None) -> float | None:
    if logged is None or not predicted:
        return None
    return round(logged / predicted, 4)


def compare_kv(preflight: dict[str, Any], log: KvLog, tolerance: float = TOLERANCE) -> KvComparison:
    """`preflight` is the role's preflight.json; its `estimate.expected_vllm_log` holds the prediction."""
    estimate = preflight.get("estimate") or {}
    expected = estimate.get("expected_vllm_log") or {}
    p_tokens = expected.get("gpu_kv_cache_tokens")
    p_conc = expected.get("maximum_concurrency")
    t_ratio = _ratio(log.gpu_kv_cache_tokens, p_tokens)
    c_ratio = _ratio(log.max_concurrency, p_conc)
    if t_ratio is None:
        within = None
        why = "no prediction in the preflight summary" if not p_tokens else "no KV line in the vLLM log"
        detail = f"cannot compare: {why}"
    else:
        within = abs(t_ratio - 1) <= tolerance
        detail = (
            f"vLLM logged {log.gpu_kv_cache_tokens:,} tokens, the preflight predicted {p_tokens:,} "
            f"(ratio {t_ratio:.3f}, {'within' if within else 'beyond'} {tolerance:.0%})"
        )
    return KvComparison(
        predicted_tokens=p_tokens,
        logged_tokens=log.gpu_kv_cache_tokens,
        tokens_ratio=t_ratio,
        predicted_concurrency=p_conc,
        logged_concurrency=log.max_concurrency,
        concurrency_ratio=c_ratio,
        predicted_max_sequences=estimate.get("predicted_max_sequences"),
        predicted_kv_gib_per_gpu=estimate.get("kv_available_gib_per_gpu"),
        logged_kv_gib_per_gpu=list(log.available_kv_gib),
        within_tolerance=within,
        detail=detail,
    )
