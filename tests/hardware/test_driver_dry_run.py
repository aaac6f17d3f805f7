"""The driver's first steps for real (ansible-playbook -c local, the roles, the render entry point) against the
project's nvidia-smi stand-in replaying the 2x H200 host. Slow-ish: two playbook runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "standins" / "nvidia_smi.py"
REPLAY = ROOT / "tests" / "fixtures" / "nvidia-smi" / "h200x2"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    if shutil.which("ansible-playbook") is None and subprocess.run(
            [sys.executable, "-c", "import ansible"], check=False).returncode != 0:
        pytest.skip(reason="ansible-core is not installed for this interpreter")
    tmp = tmp_path_factory.mktemp("hw")
    shim = tmp / "bin"
    shim.mkdir()
    smi = shim / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nNVIDIA_SMI_REPLAY_DIR={REPLAY} exec {sys.executable} {STANDIN} \"$@\"\n")
    smi.chmod(0o755)
    model = tmp / "root" / "model" / "gemma-3-4b-shaped"
    model.mkdir(parents=True)
    shutil.copy(ROOT / "hardware" / "models" / "gemma-3-4b-shaped" / "config.json", model)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", PYTHONPATH=str(ROOT / "hardware"))
    done = subprocess.run(
        [sys.executable, "-m", "hwval", "validate", "--root", str(tmp / "root"), "--repo", str(ROOT),
         "--steps", "host,preflight,render,serve_tp2,probe_c24", "--budget-s", "400"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    # Exit 1: a step failed (serve_tp2, below); anything else is the driver breaking.
    assert done.returncode == 1, done.stdout + done.stderr
    return tmp / "root" / "results"


def _steps(results: Path) -> dict:
    return {s["name"]: s for s in json.loads((results / "results.json").read_text())["steps"]}


def test_preflight_runs_the_projects_playbook_on_the_replayed_h200s(results):
    steps = _steps(results)
    assert steps["host"]["status"] == "ok"
    assert steps["host"]["detail"] == "2 GPUs"
    assert steps["preflight"]["status"] == "ok"
    summary = json.loads((results / "preflight" / "gpu-validation" / "preflight.json").read_text())
    assert summary["profile"] == "gpu"
    assert summary["parallelism"]["tensor_parallel_size"] == 2
    assert summary["vllm_version"] == "0.26.0"
    expected = summary["estimate"]["expected_vllm_log"]
    # Within 10 % of what vLLM 0.26.0 logged on this host (shared vLLM reference: 1,806,402 tokens).
    assert abs(expected["gpu_kv_cache_tokens"] / 1_806_402 - 1) < 0.10


def test_render_takes_the_host_flags_from_role_variables(results):
    tp2 = yaml.safe_load((results / "render" / "tp2" / "vllm.yaml").read_text())
    assert tp2["tensor-parallel-size"] == 2
    assert tp2["disable-custom-all-reduce"] is True
    assert tp2["compilation-config"] == {"pass_config": {"fuse_allreduce_rms": False}}
    assert tp2["load-format"] == "dummy"
    assert tp2["served-model-name"] == "gemma-3-4b-dummy"
    env2 = (results / "render" / "tp2" / "environment").read_text()
    for line in ("NCCL_NVLS_ENABLE=0", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1", "NVSHMEM_DISABLE_NVLS=1"):
        assert line in env2.splitlines()
    assert "CUDA_VISIBLE_DEVICES" not in env2
    exec_start = (results / "render" / "tp2" / "exec-start.txt").read_text().strip()
    assert exec_start.endswith(f"-m vllm.entrypoints.openai.api_server --config {results}/render/tp2/vllm.yaml")
    tp1 = yaml.safe_load((results / "render" / "tp1" / "vllm.yaml").read_text())
    assert tp1["tensor-parallel-size"] == 1
    assert tp1["enforce-eager"] is True
    assert "CUDA_VISIBLE_DEVICES=0" in (results / "render" / "tp1" / "environment").read_text().splitlines()


def test_engine_steps_are_skipped_or_failed_never_crash(results):
    steps = _steps(results)
    # No vLLM for this interpreter: the start fails fast, and the probe that needs it is skipped.
    assert steps["serve_tp2"]["status"] == "failed"
    assert steps["probe_c24"]["status"] == "skipped"
    assert (results / "DONE").is_file()
