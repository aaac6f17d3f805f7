"""The capacity estimate: the largest class a layout serves within the SLO, labelled an estimate."""

from __future__ import annotations

import json

from ansible.module_utils.gpu_preflight_capacity import CapacityInputs, estimate_capacity, gpu_spec
from ansible.module_utils.gpu_preflight_model import resolve_shape

from tests.preflight.test_checks import gpu_facts, run, settings


def _layout(known_models, driver_table, tp, pp, dp, **extra):
    s = settings(tensor_parallel_size=tp, pipeline_parallel_size=pp, data_parallel_size=dp, **extra)
    return run(known_models, driver_table, s=s)


def test_the_summary_carries_a_labelled_estimate_per_layout(known_models, driver_table):
    for tp, pp, dp in ((2, 1, 1), (1, 1, 2), (1, 2, 1)):
        summary = _layout(known_models, driver_table, tp, pp, dp)
        capacity = summary["capacity"]
        assert capacity["estimate"] is True
        assert "estimate" in capacity["note"]
        assert capacity["largest_class"] and capacity["largest_class"] > 0
        assert capacity["largest_class"] <= 100_000
        assert capacity["limited_by"]
        json.dumps(capacity)


def test_max_num_seqs_caps_the_class(known_models, driver_table):
    small = _layout(known_models, driver_table, 2, 1, 1, max_num_seqs=16, capacity_think_seconds=0)
    assert small["capacity"]["sequences_limit"] == 16
    assert small["capacity"]["largest_class"] <= 16
    assert small["capacity"]["limited_by"].startswith("sequences")
    # Two replicas hold twice the sequences.
    dp = _layout(known_models, driver_table, 1, 1, 2, max_num_seqs=16, capacity_think_seconds=0)
    assert dp["capacity"]["sequences_limit"] == 32
    assert dp["capacity"]["largest_class"] > small["capacity"]["largest_class"]


def test_a_stricter_speed_slo_gives_a_smaller_class(known_models, driver_table):
    loose = _layout(known_models, driver_table, 2, 1, 1, slo_student_tok_s=30)
    strict = _layout(known_models, driver_table, 2, 1, 1, slo_student_tok_s=250)
    assert strict["capacity"]["largest_class"] < loose["capacity"]["largest_class"]


def test_p2p_off_slows_tensor_parallel_only(known_models, driver_table):
    tp = _layout(known_models, driver_table, 2, 1, 1)["capacity"]
    tp_host = _layout(known_models, driver_table, 2, 1, 1, nccl_p2p_disable=True)["capacity"]
    assert tp_host["assumptions"]["link"] == "host"
    assert tp_host["single_student_tok_s"] < tp["single_student_tok_s"]
    dp = _layout(known_models, driver_table, 1, 1, 2)["capacity"]
    dp_host = _layout(known_models, driver_table, 1, 1, 2, nccl_p2p_disable=True)["capacity"]
    assert dp_host["single_student_tok_s"] == dp["single_student_tok_s"]


def test_an_unknown_gpu_gives_no_figure_rather_than_a_guess(known_models):
    shape, _ = resolve_shape("google/gemma-3-4b-it", None, "", known_models)
    assert gpu_spec("NVIDIA Mystery 9000") is None
    estimate = estimate_capacity(
        shape,
        CapacityInputs("NVIDIA Mystery 9000", "pcie", 1, 1, 1, 2, 4096, 100, 200, 256, 2.0, 500.0, 30.0),
    )
    assert estimate.largest_class is None
    assert "no data-sheet figures" in estimate.note


def test_messages_link_the_troubleshooting_section(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=3))
    assert summary["failed"]
    for name in summary["failed"]:
        assert f"docs/TROUBLESHOOTING.md#{name}" in summary["message"]
    fixes = [line for line in summary["table"] if line.lstrip().startswith("fix:")]
    assert fixes and all("docs/TROUBLESHOOTING.md#" in line for line in fixes)
    assert all(check["help"] == f"docs/TROUBLESHOOTING.md#{check['name']}" for check in summary["checks"])


def test_layers_must_cover_the_pipeline_stages(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=1, pipeline_parallel_size=64))
    shape = next(c for c in summary["checks"] if c["name"] == "model_shape")
    assert shape["status"] == "fail"
    assert "layers" in shape["measured"] or "layers" in shape["remediation"]


def test_gpu_facts_helper_still_describes_two_h200():
    assert len(gpu_facts()["gpus"]) == 2
