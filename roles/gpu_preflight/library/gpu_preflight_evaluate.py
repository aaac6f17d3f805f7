#!/usr/bin/python
"""Ansible module: turn gathered facts and planned settings into the preflight summary."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_preflight_evaluate
short_description: Evaluate the preflight checks (pure computation, changes nothing)
description:
  - Takes the facts of M(gpu_preflight_gpu_facts) and M(gpu_preflight_host_facts), the model's
    config.json (when one was read) and the planned vLLM settings, and returns one result per check
    plus a summary, a printable table and the failure message.
options:
  settings:
    description: Planned settings (see the role's argument specs); keys match the Settings dataclass.
    type: dict
    required: true
  gpu_facts:
    description: Facts from gpu_preflight_gpu_facts; empty on the cpu_lab profile.
    type: dict
    default: {}
  host_facts:
    description: Facts from gpu_preflight_host_facts.
    type: dict
    required: true
  model_config:
    description: Parsed config.json of a local model; empty when none was found.
    type: dict
    default: {}
  model_config_path:
    description: Where config.json was looked for ('' when the model is not local).
    type: str
    default: ''
  known_models:
    description: Known-models table.
    type: dict
    required: true
  driver_table:
    description: Driver-minimum table (vllm_wheels and cuda_drivers).
    type: dict
    required: true
author: Classroom Cluster
"""

RETURN = r"""
summary:
  description: verdict, profile, checks (name, status, measured, remediation, details), estimate and table.
  returned: always
  type: dict
"""

from dataclasses import MISSING, asdict, fields
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpu_preflight_checks import (
    GPU_CHECKS,
    GpuFacts,
    HostFacts,
    Preflight,
    Settings,
    failure_message,
    render_table,
    verdict,
)
from ansible.module_utils.gpu_preflight_model import ModelShapeError, resolve_shape


def build_settings(raw: dict[str, Any]) -> Settings:
    names = {field.name for field in fields(Settings)}
    required = {field.name for field in fields(Settings) if field.default is MISSING}
    missing = sorted(required - raw.keys())
    if missing:
        raise ValueError(f"settings lack {', '.join(missing)}")
    values = {name: raw[name] for name in names if name in raw}
    values["python_versions"] = tuple(str(v) for v in values["python_versions"])
    values["ollama_process_names"] = tuple(str(v) for v in values["ollama_process_names"])
    values["service_user"] = str(values["service_user"] or "")
    if "cutover" in values and values["cutover"] not in {"outage", "live"}:
        raise ValueError(f"cutover must be outage or live, not {values['cutover']!r}")
    # Older ansible-core templates numbers to strings inside a dict option: coerce here.
    for name in (
        "gpu_memory_utilization",
        "activation_reserve_gib",
        "min_free_disk_gib",
        "capacity_think_seconds",
        "slo_ttft_p95_ms",
        "slo_student_tok_s",
    ):
        if name in values:
            values[name] = float(values[name])
    for name in (
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "max_model_len",
        "students",
        "max_num_batched_tokens",
        "max_num_seqs",
        "min_nofile",
        "service_port",
        "capacity_prompt_tokens",
        "capacity_answer_tokens",
    ):
        if name in values:
            values[name] = int(values[name])
    for name in ("ollama_archive_in_play", "nccl_p2p_disable"):
        if isinstance(values.get(name), str):
            values[name] = values[name].lower() in {"true", "yes", "1"}
    return Settings(**values)


def evaluate(params: dict[str, Any]) -> dict[str, Any]:
    settings = build_settings(params["settings"])
    try:
        shape, note = resolve_shape(
            settings.model, params["model_config"] or None, params["model_config_path"], params["known_models"]
        )
    except ModelShapeError as exc:
        shape, note = None, str(exc)
    preflight = Preflight(
        settings=settings,
        gpu=GpuFacts.from_dict(params["gpu_facts"] or {}),
        host=HostFacts.from_dict(params["host_facts"]),
        shape=shape,
        shape_note=note,
        driver_table=params["driver_table"],
    )
    results = preflight.run()
    summary: dict[str, Any] = {
        "verdict": verdict(results),
        "profile": settings.profile,
        "model": settings.model,
        "parallelism": {
            "tensor_parallel_size": settings.tensor_parallel_size,
            "pipeline_parallel_size": settings.pipeline_parallel_size,
            "data_parallel_size": settings.data_parallel_size,
        },
        "vllm_version": settings.vllm_version,
        "settings": asdict(settings),
        "counts": {status: sum(r.status == status for r in results) for status in ("pass", "warn", "fail", "skip")},
        "checks": [result.to_dict() for result in results],
        "failed": [result.name for result in results if result.status == "fail"],
        "warned": [result.name for result in results if result.status == "warn"],
        "table": render_table(results),
        "message": failure_message(results) if any(r.status == "fail" for r in results) else "",
    }
    if settings.profile == "cpu_lab":
        summary["gpu_checks_skipped"] = {"checks": list(GPU_CHECKS), "reason": "profile cpu_lab: no GPU expected"}
    if preflight.plan_details:
        plan = preflight.plan_details
        summary["estimate"] = {
            "note": "estimate of vLLM's KV cache planning; compare with the engine's start-up log",
            "predicted_max_sequences": plan["predicted_max_sequences"],
            "predicted_concurrent_sequences": plan["predicted_concurrent_sequences"],
            "kv_available_gib_per_gpu": plan["kv_available_gib_per_gpu"],
            "max_model_len": settings.max_model_len,
            "max_num_batched_tokens": plan["max_num_batched_tokens"],
            "expected_vllm_log": {
                "gpu_kv_cache_tokens": plan["vllm_log_kv_tokens"],
                "maximum_concurrency": plan["vllm_log_max_concurrency"],
                "basis": "vLLM 0.26 logs 'GPU KV cache size' as if every (padded) layer were full attention",
            },
        }
    if preflight.capacity_details:
        summary["capacity"] = preflight.capacity_details
    summary["cutover"] = preflight.cutover_plan()
    return summary


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "gpu_facts": {"type": "dict", "default": {}},
            "host_facts": {"type": "dict", "required": True},
            "model_config": {"type": "dict", "default": {}},
            "model_config_path": {"type": "str", "default": ""},
            "known_models": {"type": "dict", "required": True},
            "driver_table": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        summary = evaluate(module.params)
    except (ValueError, KeyError, TypeError) as exc:
        module.fail_json(msg=f"gpu_preflight_evaluate: bad input: {exc}")
    module.exit_json(changed=False, summary=summary)


if __name__ == "__main__":
    main()
