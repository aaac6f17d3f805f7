#!/usr/bin/python
"""Ansible module: read-only GPU facts from nvidia-smi."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_preflight_gpu_facts
short_description: Gather GPU facts from nvidia-smi (read-only)
description:
  - Runs C(nvidia-smi --query-gpu=...), plain C(nvidia-smi) (CUDA version from the header),
    C(nvidia-smi topo -m) and C(nvidia-smi --query-compute-apps=...) and returns what they say.
  - Never fails because of the GPU state; a missing binary or an unloaded driver is reported in the result.
options:
  nvidia_smi:
    description: Name or path of the nvidia-smi binary.
    type: str
    default: nvidia-smi
author: Classroom Cluster
"""

RETURN = r"""
gpu_facts:
  description: >-
    present, driver_loaded, error, failure (kind, summary, fix when nvidia-smi failed), driver_version,
    cuda_version, gpus (each with the fields that read [N/A] in unknown), topology, compute_apps, notes.
  returned: always
  type: dict
"""

import os
from dataclasses import asdict
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpu_preflight_smi import (
    QUERY_APPS_FIELDS,
    QUERY_GPU_FIELDS,
    SmiParseError,
    classify_failure,
    parse_compute_apps,
    parse_header_versions,
    parse_query_gpu,
    parse_topology,
)

QUERY_GPU_ARGS = [f"--query-gpu={','.join(QUERY_GPU_FIELDS)}", "--format=csv,noheader,nounits"]
QUERY_APPS_ARGS = [f"--query-compute-apps={','.join(QUERY_APPS_FIELDS)}", "--format=csv,noheader,nounits"]
TOPO_ARGS = ["topo", "-m"]


def _first_lines(text: str, count: int = 3) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:count])


def gather(module: AnsibleModule) -> dict[str, Any]:
    name = module.params["nvidia_smi"]
    path = name if os.path.isabs(name) and os.access(name, os.X_OK) else module.get_bin_path(name)
    facts: dict[str, Any] = {"present": bool(path), "path": path, "driver_loaded": False, "error": "", "notes": []}
    if not path:
        facts["error"] = f"{name} not found (or not executable)"
        return facts

    def run(args: list[str]) -> tuple[int, str, str]:
        # LC_ALL=C keeps numbers and messages in the format the parsers expect.
        rc, out, err = module.run_command([path, *args], environ_update={"LC_ALL": "C"})
        return int(rc), str(out), str(err)

    rc, out, err = run(QUERY_GPU_ARGS)
    if rc != 0:
        facts["error"] = _first_lines(out or err) or f"nvidia-smi exited {rc}"
        facts["failure"] = asdict(classify_failure(rc, f"{out}\n{err}"))
        # "No devices were found" comes from a loaded driver: say so rather than "not loaded".
        facts["driver_loaded"] = facts["failure"]["kind"] == "no_devices"
        return facts
    try:
        gpus = parse_query_gpu(out)
    except SmiParseError as exc:
        facts["error"] = str(exc)
        return facts
    facts["driver_loaded"] = True
    facts["gpus"] = [asdict(gpu) for gpu in gpus]

    rc, out, err = run([])
    driver, cuda = parse_header_versions(out) if rc == 0 else (None, None)
    facts["driver_version"] = driver or (gpus[0].driver_version if gpus else None)
    facts["cuda_version"] = cuda
    if rc != 0:
        facts["notes"].append(f"nvidia-smi header unavailable: {_first_lines(out or err)}")

    rc, out, err = run(TOPO_ARGS)
    facts["topology"] = None
    if rc == 0:
        try:
            facts["topology"] = parse_topology(out).to_dict()
        except SmiParseError as exc:
            facts["notes"].append(f"topology: {exc}")
    else:
        facts["notes"].append(f"nvidia-smi topo -m failed: {_first_lines(out or err)}")

    rc, out, err = run(QUERY_APPS_ARGS)
    facts["compute_apps"] = []
    if rc == 0:
        try:
            facts["compute_apps"] = [asdict(app) for app in parse_compute_apps(out)]
        except SmiParseError as exc:
            facts["notes"].append(f"compute apps: {exc}")
    else:
        facts["notes"].append(f"--query-compute-apps failed: {_first_lines(out or err)}")
    return facts


def main() -> None:
    module = AnsibleModule(
        argument_spec={"nvidia_smi": {"type": "str", "default": "nvidia-smi"}},
        supports_check_mode=True,
    )
    module.exit_json(changed=False, gpu_facts=gather(module))


if __name__ == "__main__":
    main()
