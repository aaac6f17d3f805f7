"""What one validation run does: paths on the GPU host, loads and time limits."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# NVLink multicast can take a shared host's GPUs out of service: every process started here has it off.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}

STEPS = (
    "host", "preflight", "render", "serve_tp2", "kv_compare", "probe_c24", "probe_c48", "probe_batch", "kill",
    "serve_tp1", "probe_tp1_imbalance", "stop_tp1", "matmul_balance",
)


@dataclass
class Settings:
    root: Path  # everything the run writes lives under it
    repo: Path  # a copy of the project (roles, playbooks, hardware/, probe/src)
    python: str = sys.executable
    site: Path | None = None  # carried packages (pip --target), prepended to PYTHONPATH
    vllm_python: str | None = None  # interpreter of the vLLM venv when it is not `python`
    model_dir: Path | None = None  # model folder; None: the inventory's (<root>/model/gemma-3-4b-shaped)
    extra_vars: dict[str, Any] = field(default_factory=dict)  # more -e variables (e.g. a CPU dry run)
    smi: str = "nvidia-smi"
    base_url: str = "http://127.0.0.1:8000"
    served_model_name: str = "gemma-3-4b-dummy"
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    budget_s: float = 900.0
    students: tuple[int, int] = (24, 48)
    classroom_duration_s: float = 60.0
    classroom_warmup_s: float = 10.0
    classroom_max_tokens: int = 256
    batch_requests: int = 5000
    batch_concurrency: int = 128
    batch_max_tokens: int = 64
    batch_time_limit_s: float = 150.0
    kill_students: int = 48
    kill_after_s: float = 15.0
    kill_probe_duration_s: float = 40.0
    kill_max_tokens: int = 1024
    imbalance_students: int = 24
    imbalance_duration_s: float = 40.0
    imbalance_warmup_s: float = 5.0
    matmul_seconds: float = 30.0
    health_timeout_tp2_s: float = 480.0
    health_timeout_tp1_s: float = 360.0
    tp1_enforce_eager: bool = True

    @property
    def results(self) -> Path:
        return self.root / "results"

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(MULTICAST_OFF)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the rendered environment decides which GPUs vLLM sees
        paths = [str(self.repo / "hardware"), str(self.repo / "probe" / "src")]
        if self.site is not None:
            paths.insert(0, str(self.site))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("LANG", "C.UTF-8")
        env["LC_ALL"] = "C.UTF-8"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}
