"""nvidia-smi read-outs kept beside the results: the GPUs, what held them, how much memory."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

SMI = "nvidia-smi"


@dataclass(frozen=True)
class GpuApp:
    pid: int
    name: str
    used_mib: int | None
    gpu_uuid: str


def run_smi(args: list[str], smi: str = SMI, timeout: float = 20.0) -> str:
    path = shutil.which(smi)
    if path is None:
        raise RuntimeError(f"{smi} not found on PATH")
    done = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{smi} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[:200]}")
    return done.stdout


def parse_apps(text: str) -> list[GpuApp]:
    """`--query-compute-apps=pid,process_name,used_memory,gpu_uuid --format=csv,noheader,nounits`."""
    apps = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 4 or not cols[0].isdigit():
            continue
        used = int(cols[2]) if cols[2].isdigit() else None
        apps.append(GpuApp(int(cols[0]), cols[1], used, cols[3]))
    return apps


def compute_apps(smi: str = SMI) -> list[dict[str, Any]]:
    out = run_smi(["--query-compute-apps=pid,process_name,used_memory,gpu_uuid", "--format=csv,noheader,nounits"], smi)
    return [asdict(a) for a in parse_apps(out)]


def memory_used(smi: str = SMI) -> dict[int, int]:
    """MiB used per GPU index."""
    out = run_smi(["--query-gpu=index,memory.used", "--format=csv,noheader,nounits"], smi)
    used = {}
    for line in out.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) == 2 and cols[0].isdigit() and cols[1].isdigit():
            used[int(cols[0])] = int(cols[1])
    return used


def gpu_indices(smi: str = SMI) -> list[int]:
    out = run_smi(["--query-gpu=index", "--format=csv,noheader"], smi)
    return [int(line.strip()) for line in out.splitlines() if line.strip().isdigit()]
