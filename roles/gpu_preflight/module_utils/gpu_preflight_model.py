"""Model shape from a Hugging Face ``config.json`` or the role's known-models table.

Only the fields the preflight needs: attention geometry for the tensor-parallel rules and
the KV-cache sizing, the sliding-window layout, and a parameter count for the weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# vLLM refuses float16 for these model types ("Numerical instability").
FLOAT16_UNSUPPORTED = frozenset({"gemma2", "gemma3", "gemma3_text"})
# Gemma 2 alternates local and global layers without saying so in its config.
_IMPLICIT_SLIDING_PATTERN = {"gemma2": 2}


class ModelShapeError(ValueError):
    """The config lacks a field the checks cannot do without."""


@dataclass(frozen=True)
class ModelShape:
    name: str
    source: str
    model_type: str
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    intermediate_size: int | None
    sliding_window: int | None
    num_sliding_layers: int
    torch_dtype: str | None
    num_parameters: int
    parameters_estimated: bool

    @property
    def num_full_layers(self) -> int:
        return self.num_hidden_layers - self.num_sliding_layers

    @property
    def refuses_float16(self) -> bool:
        return self.model_type in FLOAT16_UNSUPPORTED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["num_full_layers"] = self.num_full_layers
        return data


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal checkpoints (Gemma 3) keep the language model under ``text_config``."""
    text = config.get("text_config")
    if isinstance(text, dict):
        merged = {key: value for key, value in config.items() if key != "text_config"}
        merged.update(text)
        merged.setdefault("outer_model_type", config.get("model_type"))
        return merged
    return dict(config)


def _count_sliding_layers(cfg: dict[str, Any], layers: int, model_type: str) -> int:
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return sum(1 for kind in layer_types if kind == "sliding_attention")
    if "num_sliding_layers" in cfg:
        return int(cfg["num_sliding_layers"])
    if not cfg.get("sliding_window") or cfg.get("use_sliding_window") is False:
        return 0
    pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern")
    pattern = pattern or _IMPLICIT_SLIDING_PATTERN.get(model_type)
    if pattern:
        # Every pattern-th layer is global: 34 layers with pattern 6 give 5 global, 29 local.
        return layers - layers // int(pattern)
    return layers


def estimate_parameters(
    *, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int, vocab: int, tied: bool
) -> int:
    """Dense decoder estimate: attention and gated MLP per layer, plus embeddings."""
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    embeddings = vocab * hidden * (1 if tied else 2)
    return layers * (attention + mlp) + embeddings


def shape_from_config(config: dict[str, Any], *, name: str, source: str) -> ModelShape:
    cfg = _text_config(config)
    model_type = str(cfg.get("outer_model_type") or cfg.get("model_type") or "unknown")
    try:
        heads = int(cfg["num_attention_heads"])
        layers = int(cfg["num_hidden_layers"])
        hidden = int(cfg["hidden_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelShapeError(f"{source}: missing or invalid {exc}") from exc
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    vocab = int(cfg.get("vocab_size") or 0)
    intermediate = cfg.get("intermediate_size")
    intermediate = int(intermediate) if intermediate else None
    sliding = int(cfg["sliding_window"]) if cfg.get("sliding_window") else None
    inner_type = str(cfg.get("model_type") or model_type)
    num_sliding = _count_sliding_layers(cfg, layers, inner_type) if sliding else 0
    given = cfg.get("num_parameters")
    estimated = not given
    params = (
        int(given)
        if given
        else estimate_parameters(
            layers=layers,
            hidden=hidden,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate=intermediate or 4 * hidden,
            vocab=vocab,
            tied=bool(cfg.get("tie_word_embeddings", False)),
        )
    )
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    return ModelShape(
        name=name,
        source=source,
        model_type=model_type,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        num_hidden_layers=layers,
        head_dim=head_dim,
        hidden_size=hidden,
        vocab_size=vocab,
        intermediate_size=intermediate,
        sliding_window=sliding,
        num_sliding_layers=num_sliding,
        torch_dtype=str(dtype) if dtype else None,
        num_parameters=params,
        parameters_estimated=estimated,
    )


def lookup_known_model(model: str, known: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """Table entry for a model id or path: exact key, alias, or the path's last component."""
    candidates = [model, model.rstrip("/").rsplit("/", 1)[-1]]
    for key, entry in known.items():
        names = {key, key.rsplit("/", 1)[-1], *entry.get("aliases", [])}
        if any(candidate in names for candidate in candidates):
            return key, entry
    return None


def resolve_shape(
    model: str, config: dict[str, Any] | None, config_path: str, known: dict[str, dict[str, Any]]
) -> tuple[ModelShape | None, str]:
    """Shape from the local config when there is one, else from the table; the string says why."""
    if config:
        return shape_from_config(config, name=model, source=config_path or "config.json"), f"read from {config_path}"
    found = lookup_known_model(model, known)
    if found is None:
        where = f"no config.json at {config_path} and " if config_path else ""
        return None, f"{where}'{model}' is not in the known-models table"
    key, entry = found
    fields = {k: v for k, v in entry.items() if k not in {"aliases", "source"}}
    return shape_from_config(
        fields, name=model, source=f"known-models table ({key})"
    ), f"known-models table entry {key}"


def valid_tensor_parallel_sizes(shape: ModelShape, limit: int) -> list[int]:
    return [tp for tp in range(1, max(limit, 1) + 1) if not tensor_parallel_problems(shape, tp)]


def tensor_parallel_problems(shape: ModelShape, tp: int) -> list[str]:
    """The divisibility rules vLLM enforces when it shards a model over ``tp`` GPUs."""
    problems = []
    if shape.num_attention_heads % tp:
        problems.append(f"{shape.num_attention_heads} attention heads are not divisible by tensor_parallel_size {tp}")
    kv = shape.num_key_value_heads
    # Fewer KV heads than ranks is allowed when the heads can be replicated evenly.
    if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
        problems.append(f"{kv} KV heads cannot be split or replicated evenly over tensor_parallel_size {tp}")
    if shape.intermediate_size and shape.intermediate_size % tp:
        problems.append(f"intermediate size {shape.intermediate_size} is not divisible by tensor_parallel_size {tp}")
    return problems


def layers_per_stage(layers: int, pp: int) -> int:
    return math.ceil(layers / pp)
