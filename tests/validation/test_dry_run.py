"""playbooks/validate.yml for real without a GPU: ansible-playbook -c local, the roles, the render entry point,
against the project's nvidia-smi stand-in replaying the 2x H200 host. The kit's Python is a stand-in
environment (this interpreter with the kit and the probe on its path) that has no vLLM, so the first
engine start fails fast and the run says so."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.validation.standin import H200X2, STANDIN

ROOT = Path(__file__).resolve().parents[2]
TAGS = "host,preflight,render,serve"


def _playbook(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    entry = Path(sys.executable).with_name("ansible-playbook")
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "ansible.cli.playbook"]
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run([*command, "-i", str(ROOT / "inventories" / "gpu-validation" / "hosts.yml"),
                           str(ROOT / "playbooks" / "validate.yml"), "-e", f"gpu_validation_python={tmp}/bin/python",
                           *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)


def _changed(output: str) -> int:
    found = re.search(r"gpu-validation\s+: ok=\d+\s+changed=(\d+)", output)
    assert found, output[-3000:]
    return int(found.group(1))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
    if shutil.which("ansible-playbook") is None and subprocess.run(
            [sys.executable, "-c", "import ansible"], check=False).returncode != 0:
        pytest.skip(reason="ansible-core is not installed for this interpreter")
    tmp = tmp_path_factory.mktemp("validate")
    (tmp / "bin").mkdir()
    python = tmp / "bin" / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT}/validation/src:{ROOT}/probe/src exec {sys.executable} \"$@\"\n")
    smi = tmp / "bin" / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nNVIDIA_SMI_REPLAY_DIR={H200X2} exec {sys.executable} {STANDIN} \"$@\"\n")
    for shim in (python, smi):
        shim.chmod(0o755)
    root = tmp / "root"
    runs = [_playbook(tmp, "-e", f"gpu_validation_root={root}", "--tags", TAGS) for _ in range(2)]
    runs.append(_playbook(tmp, "-e", f"gpu_validation_root={tmp / 'fresh'}", "--check", "--tags", "preflight"))
    return root, runs


def _steps(root: Path) -> dict:
    return {s["name"]: s for s in json.loads((root / "results" / "results.json").read_text())["steps"]}


def test_preflight_runs_the_projects_role_on_the_replayed_h200s(run):
    root, _ = run
    steps = _steps(root)
    assert steps["host"]["status"] == "ok" and steps["host"]["detail"] == "2 GPUs"
    assert steps["preflight"]["status"] == "ok"
    summary = json.loads((root / "results" / "preflight" / "gpu-validation" / "preflight.json").read_text())
    assert summary["profile"] == "gpu"
    assert summary["parallelism"]["tensor_parallel_size"] == 2
    assert summary["vllm_version"] == "0.26.0"
    expected = summary["estimate"]["expected_vllm_log"]
    # Within 10 % of what vLLM 0.26.0 logged on this host (docs/hardware-validation: 1,806,402 tokens).
    assert abs(expected["gpu_kv_cache_tokens"] / 1_806_402 - 1) < 0.10


def test_the_model_folder_gets_the_committed_config_and_a_tokenizer_for_its_vocabulary(run):
    root, _ = run
    model = root / "bundle" / "models" / "gemma-3-4b-shaped"
    assert (model / "config.json").read_text() == (ROOT / "files/models/gemma-3-4b-shaped/config.json").read_text()
    assert len(json.loads((model / "tokenizer.json").read_text())["model"]["vocab"]) == 262_208


def test_render_takes_the_host_flags_from_role_variables(run):
    root, _ = run
    render = root / "results" / "render"
    tp2 = yaml.safe_load((render / "tp2" / "vllm.yaml").read_text())
    assert tp2["tensor-parallel-size"] == 2
    assert tp2["disable-custom-all-reduce"] is True
    assert tp2["compilation-config"] == {"pass_config": {"fuse_allreduce_rms": False}}
    assert tp2["load-format"] == "dummy"
    assert tp2["served-model-name"] == "gemma-3-4b-dummy"
    env2 = (render / "tp2" / "environment").read_text().splitlines()
    for line in ("NCCL_NVLS_ENABLE=0", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1", "NVSHMEM_DISABLE_NVLS=1"):
        assert line in env2
    assert not any(line.startswith("CUDA_VISIBLE_DEVICES") for line in env2)
    exec_start = (render / "tp2" / "exec-start.txt").read_text().strip()
    assert exec_start == (f"{root}/venv/bin/python -m vllm.entrypoints.openai.api_server "
                          f"--config {root}/render/tp2/vllm.yaml")
    tp1 = yaml.safe_load((render / "tp1" / "vllm.yaml").read_text())
    assert tp1["tensor-parallel-size"] == 1
    assert tp1["enforce-eager"] is True
    assert "CUDA_VISIBLE_DEVICES=0" in (render / "tp1" / "environment").read_text().splitlines()


def test_an_engine_that_cannot_start_fails_its_step_and_the_run_says_why(run):
    root, runs = run
    steps = _steps(root)
    assert steps["serve_tp2"]["status"] == "failed"
    assert "exited with code" in steps["serve_tp2"]["detail"]
    assert steps["kv_compare"]["status"] == "skipped"
    assert (root / "results" / "DONE").is_file()
    assert "| serve_tp2 | failed |" in (root / "results" / "SUMMARY.md").read_text()
    assert runs[0].returncode == 2
    assert "The validation failed on gpu-validation: failed steps serve_tp2" in runs[0].stdout
    assert "Traceback" not in runs[0].stdout + runs[0].stderr


def test_a_second_run_changes_nothing(run):
    _, runs = run
    assert _changed(runs[0].stdout) > 0
    assert _changed(runs[1].stdout) == 0


def test_check_mode_on_a_fresh_host_runs_the_preflight_and_starts_nothing(run, tmp_path):
    root, runs = run
    check = runs[2]
    assert check.returncode == 0, check.stdout[-3000:]
    assert "Check mode: the preflight ran" in check.stdout
    assert not (root.parent / "fresh").exists()
