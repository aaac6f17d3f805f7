"""Gate thresholds and the built-in profiles: a profile is a named set of thresholds.

A run names a profile; any limit it sets differently is an override, recorded as such beside the
profile's name (`overrides`), so a report never shows one profile's name with another's limits.
"""

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from classroom_probe.errors import BadInput
from classroom_probe.inputs import MIB, read_json


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every limit the gate checks; None disables that check. See probe/README.md for definitions."""

    ttft_p95_ms_max: float | None = None
    student_output_tok_s_min: float | None = None
    failures_max: int | None = None
    gpu_util_mean_min_pct: float | None = None
    gpu_util_balance_max_ratio: float | None = None
    probe_loop_lag_p99_ms_max: float | None = None
    min_requests: int | None = None

    def to_json(self) -> dict[str, float | int | None]:
        return asdict(self)


PROFILES: dict[str, Thresholds] = {
    # A GPU box serving a class: the seed SLO of the project.
    "classroom": Thresholds(
        ttft_p95_ms_max=500.0,
        student_output_tok_s_min=30.0,
        failures_max=0,
        gpu_util_mean_min_pct=10.0,
        gpu_util_balance_max_ratio=2.0,
        probe_loop_lag_p99_ms_max=5.0,
        min_requests=10,
    ),
    # The CPU lab engine shares the probe's cores: no GPU, loose latency, a looser probe-health limit.
    "lab": Thresholds(
        ttft_p95_ms_max=5000.0,
        student_output_tok_s_min=2.0,
        failures_max=0,
        gpu_util_mean_min_pct=None,
        gpu_util_balance_max_ratio=None,
        probe_loop_lag_p99_ms_max=50.0,
        min_requests=1,
    ),
    # Ollama before the move: queues requests per model and often uses one GPU, so looser latency and
    # no balance check (the comparison report shows the imbalance instead of failing on it).
    "ollama": Thresholds(
        ttft_p95_ms_max=2000.0,
        student_output_tok_s_min=10.0,
        failures_max=0,
        gpu_util_mean_min_pct=5.0,
        gpu_util_balance_max_ratio=None,
        probe_loop_lag_p99_ms_max=5.0,
        min_requests=10,
    ),
}

PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
INT_KEYS = frozenset({"failures_max", "min_requests"})
THRESHOLD_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Thresholds))


def overrides(profile: str, thresholds: Thresholds) -> dict[str, float | int | None]:
    """The limits that differ from the named profile's."""
    base = PROFILES[profile].to_json()
    return {k: v for k, v in thresholds.to_json().items() if base[k] != v}


def load_thresholds(profile: str, path: Path | None) -> Thresholds:
    """The profile's thresholds, overridden by the keys of a JSON file (null disables a check)."""
    if profile not in PROFILES:
        raise BadInput("--profile", f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    base = PROFILES[profile]
    if path is None:
        return base
    return apply_overrides(base, read_json(path, "--thresholds", MIB))


def apply_overrides(base: Thresholds, obj: object, source: str = "--thresholds") -> Thresholds:
    if not isinstance(obj, dict):
        raise BadInput(source, "must be a JSON object")
    unknown = sorted(set(obj) - set(THRESHOLD_KEYS))
    if unknown:
        raise BadInput(f"thresholds.{unknown[0]}", f"unknown key; known keys: {', '.join(THRESHOLD_KEYS)}")
    changes: dict[str, float | int | None] = {}
    for key, value in obj.items():
        changes[key] = _validate(key, value)
    return replace(base, **changes)  # type: ignore[arg-type]


def _validate(key: str, value: object) -> float | int | None:
    field = f"thresholds.{key}"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(field, f"must be a number or null, got {json.dumps(value)}")
    if not math.isfinite(value) or value < 0:
        raise BadInput(field, "must be a finite number >= 0")
    if key in INT_KEYS:
        if value != int(value):
            raise BadInput(field, "must be a whole number")
        return int(value)
    if key == "gpu_util_balance_max_ratio" and value < 1:
        raise BadInput(field, "a max/min ratio below 1 can never pass")
    return float(value)
