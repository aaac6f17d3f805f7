"""Model shapes (config.json and the known-models table) and the KV-cache memory plan."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.gpu_preflight_model import (
    ModelShapeError,
    lookup_known_model,
    resolve_shape,
    shape_from_config,
    tensor_parallel_problems,
    valid_tensor_parallel_sizes,
)
from ansible.module_utils.gpu_preflight_plan import PlanInputs, effective_batched_tokens, plan_memory

from tests.support.nvidia_smi import ROOT

H200_MIB = 143771


def gemma(known_models):
    shape, _ = resolve_shape("google/gemma-3-4b-it", None, "", known_models)
    return shape


def plan_inputs(**overrides):
    values = dict(
        tensor_parallel_size=2,
        pipeline_parallel_size=1,
        data_parallel_size=1,
        dtype="bfloat16",
        kv_cache_dtype="auto",
        gpu_total_mib=H200_MIB,
        held_by_others_mib=0,
        gpu_memory_utilization=0.9,
        max_model_len=8192,
        students=24,
        max_num_batched_tokens=0,
        max_num_seqs=0,
        activation_reserve_gib=1.5,
    )
    values.update(overrides)
    return PlanInputs(**values)


def test_gemma_known_shape(known_models):
    shape = gemma(known_models)
    assert (shape.num_attention_heads, shape.num_key_value_heads, shape.num_hidden_layers) == (8, 4, 34)
    assert (shape.head_dim, shape.hidden_size, shape.vocab_size) == (256, 2560, 262208)
    assert (shape.sliding_window, shape.num_full_layers, shape.num_sliding_layers) == (1024, 5, 29)
    assert shape.refuses_float16


def test_known_models_classroom_tiny_matches_its_config_json(known_models):
    config = json.loads((ROOT / "files/models/classroom-tiny/config.json").read_text())
    entry = known_models["classroom-tiny"]
    for key in (
        "num_attention_heads",
        "num_key_value_heads",
        "num_hidden_layers",
        "head_dim",
        "hidden_size",
        "intermediate_size",
        "vocab_size",
        "model_type",
        "tie_word_embeddings",
        "torch_dtype",
    ):
        assert entry[key] == config[key], key


def test_local_path_resolves_to_table_by_last_component(known_models):
    key, _ = lookup_known_model("/srv/models/classroom-tiny/", known_models)
    assert key == "classroom-tiny"
    assert lookup_known_model("someone/other-model", known_models) is None


def test_config_json_wins_over_the_table(known_models):
    config = json.loads((ROOT / "files/models/classroom-tiny/config.json").read_text())
    shape, note = resolve_shape(
        "/srv/models/classroom-tiny", config, "/srv/models/classroom-tiny/config.json", known_models
    )
    assert note == "read from /srv/models/classroom-tiny/config.json"
    assert (shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim) == (4, 2, 64)
    assert shape.parameters_estimated
    # 2 layers x (attention 4*64*256*2 + 2*64*256*2 + MLP 3*256*512) + tied embeddings 4096*256
    assert shape.num_parameters == 2 * (131072 + 65536 + 393216) + 1048576


def test_unknown_model_without_config(known_models):
    shape, note = resolve_shape("acme/unknown", None, "/srv/x/config.json", known_models)
    assert shape is None
    assert "no config.json at /srv/x/config.json" in note


def test_multimodal_gemma3_config_reads_text_config():
    config = {
        "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text",
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "num_hidden_layers": 34,
            "head_dim": 256,
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "sliding_window": 1024,
            "sliding_window_pattern": 6,
            "vocab_size": 262208,
        },
    }
    shape = shape_from_config(config, name="g", source="x")
    assert shape.model_type == "gemma3"
    assert (shape.num_full_layers, shape.num_sliding_layers) == (5, 29)


def test_layer_types_list_counts_sliding_layers():
    config = {
        "num_attention_heads": 8,
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    }
    assert shape_from_config(config, name="m", source="x").num_sliding_layers == 2


def test_sliding_window_disabled_means_full_attention():
    config = {
        "num_attention_heads": 8,
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "sliding_window": 4096,
        "use_sliding_window": False,
    }
    assert shape_from_config(config, name="m", source="x").num_sliding_layers == 0


def test_config_without_heads_is_an_error():
    with pytest.raises(ModelShapeError):
        shape_from_config({"hidden_size": 1}, name="m", source="broken.json")


@pytest.mark.parametrize(("tp", "ok"), [(1, True), (2, True), (4, True), (8, True), (3, False), (6, False)])
def test_gemma_tensor_parallel_rules(known_models, tp, ok):
    assert (not tensor_parallel_problems(gemma(known_models), tp)) is ok


def test_gemma_tp3_names_heads(known_models):
    problems = tensor_parallel_problems(gemma(known_models), 3)
    assert problems[0] == "8 attention heads are not divisible by tensor_parallel_size 3"
    assert valid_tensor_parallel_sizes(gemma(known_models), 8) == [1, 2, 4, 8]


def test_kv_heads_fewer_than_ranks_replicate(known_models):
    # 4 KV heads over 8 ranks replicate evenly; over 16 too (heads 8 would fail first).
    assert not any("KV" in p for p in tensor_parallel_problems(gemma(known_models), 8))


def test_plan_matches_the_h200_log_line(known_models):
    # Measured (vllm.md): 2x H200, TP 2, utilisation 0.9, max_model_len 8192, vLLM 0.26:
    # "Available KV cache memory: 120.79 GiB", "GPU KV cache size: 1,806,402 tokens", 220.51x.
    plan = plan_memory(gemma(known_models), plan_inputs())
    assert plan.kv_bytes_per_token_per_layer == 2 * 2 * 256 * 2
    assert (plan.layer_groups, plan.layers_per_group) == (7, 5)  # 35 padded layers
    assert abs(plan.kv_available_gib_per_gpu - 120.79) < 0.5
    assert abs(plan.vllm_log_kv_tokens - 1_806_402) / 1_806_402 < 0.01
    assert abs(plan.vllm_log_max_concurrency - 220.51) < 2.5
    assert plan.fits


def test_plan_sliding_layers_cost_less_with_small_batches(known_models):
    shape = gemma(known_models)
    small = plan_memory(shape, plan_inputs(max_num_batched_tokens=2048, max_model_len=32768))
    assert small.sliding_tokens_per_sequence == 1023 + 2048
    full_only = 7 * (32768 // 16)
    assert small.blocks_per_sequence < full_only
    assert small.predicted_max_sequences > small.vllm_log_max_concurrency


def test_plan_default_batched_tokens_depend_on_gpu_size():
    assert effective_batched_tokens(0, 49140) == 2048
    assert effective_batched_tokens(0, H200_MIB) == 8192
    assert effective_batched_tokens(4096, H200_MIB) == 4096


def test_plan_memory_held_by_others_shrinks_the_budget(known_models):
    free = plan_memory(gemma(known_models), plan_inputs())
    held = plan_memory(gemma(known_models), plan_inputs(held_by_others_mib=40000))
    assert held.budget_gib_per_gpu < free.budget_gib_per_gpu
    assert held.predicted_max_sequences < free.predicted_max_sequences


def test_plan_float32_gemma_does_not_fit_a_t4(known_models):
    plan = plan_memory(gemma(known_models), plan_inputs(tensor_parallel_size=1, dtype="float32", gpu_total_mib=15360))
    assert plan.weights_gib_per_gpu > 15
    assert plan.kv_available_gib_per_gpu < 0
    assert not plan.fits
    assert plan.predicted_max_sequences == 0


def test_plan_data_parallel_multiplies_sequences(known_models):
    one = plan_memory(gemma(known_models), plan_inputs(tensor_parallel_size=1))
    two = plan_memory(gemma(known_models), plan_inputs(tensor_parallel_size=1, data_parallel_size=2))
    assert two.predicted_max_sequences == 2 * one.predicted_max_sequences
