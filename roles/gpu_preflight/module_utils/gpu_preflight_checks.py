"""The preflight checks: each turns measured facts into a named pass/warn/fail/skip result.

Inputs are the facts the role gathered (GPU facts from nvidia-smi, host facts) and the
planned vLLM settings; nothing here runs a command, so every rule is unit-testable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ansible.module_utils.gpu_preflight_capacity import CapacityInputs, estimate_capacity
from ansible.module_utils.gpu_preflight_model import (
    ModelShape,
    tensor_parallel_problems,
    valid_tensor_parallel_sizes,
)
from ansible.module_utils.gpu_preflight_plan import DTYPE_BYTES, GIB, MemoryPlan, PlanInputs, plan_memory
from ansible.module_utils.gpu_preflight_smi import ComputeApp, Gpu, Link, SmiFailure, Topology

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
GPU_CHECKS = (
    "nvidia_smi",
    "driver_version",
    "gpu_count",
    "dtype",
    "memory_fit",
    "gpu_memory_free",
    "cutover_memory",
    "interconnect",
)
# The live cut-over starts vLLM beside Ollama with this much of each GPU left unclaimed, for the CUDA
# context and allocator growth nvidia-smi does not show yet.
CUTOVER_MARGIN = 0.03
BF16_MIN_CC = (8, 0)
# Every check has a section of this name in the troubleshooting guide; messages link to it.
TROUBLESHOOTING = "docs/TROUBLESHOOTING.md"


def help_link(check: str) -> str:
    return f"{TROUBLESHOOTING}#{check}"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    measured: str
    remediation: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "help": help_link(self.name)}


@dataclass(frozen=True)
class Settings:
    profile: str
    model: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    dtype: str
    kv_cache_dtype: str
    max_model_len: int
    students: int
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    activation_reserve_gib: float
    vllm_version: str
    cuda_version: str
    python_versions: tuple[str, ...]
    min_free_disk_gib: float
    min_nofile: int
    service_port: int
    ollama_archive_in_play: bool
    ollama_process_names: tuple[str, ...]
    # The project's own vLLM service runs as this user; the vllm stage replaces it in place,
    # so its port and GPU memory are not someone else's. Empty: every holder is foreign.
    service_user: str
    # The capacity estimate's load and SLO (the probe's classroom profile and a short exchange).
    capacity_prompt_tokens: int = 200
    capacity_answer_tokens: int = 256
    capacity_think_seconds: float = 2.0
    slo_ttft_p95_ms: float = 500.0
    slo_student_tok_s: float = 30.0
    # NCCL_P2P_DISABLE=1: GPU-to-GPU traffic goes through host memory.
    nccl_p2p_disable: bool = False
    # outage: vLLM starts once Ollama is stopped; live: beside the running instances, with the share of GPU
    # memory they leave free, and the gateway swaps backends (playbooks/cutover.yml).
    cutover: str = "outage"

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size


@dataclass
class GpuFacts:
    present: bool = False
    driver_loaded: bool = False
    error: str = ""
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: list[Gpu] = field(default_factory=list)
    topology: Topology | None = None
    compute_apps: list[ComputeApp] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Set when nvidia-smi could not list the GPUs: what kind of failure, and its fix.
    failure: SmiFailure | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuFacts:
        topo = data.get("topology")
        failure = data.get("failure")
        return cls(
            present=bool(data.get("present")),
            driver_loaded=bool(data.get("driver_loaded")),
            error=str(data.get("error") or ""),
            driver_version=data.get("driver_version"),
            cuda_version=data.get("cuda_version"),
            gpus=[Gpu(**{**gpu, "unknown": tuple(gpu.get("unknown") or ())}) for gpu in data.get("gpus") or []],
            topology=(
                Topology(gpu_indices=list(topo["gpu_indices"]), links=[Link(**link) for link in topo["links"]])
                if topo
                else None
            ),
            compute_apps=[ComputeApp(**app) for app in data.get("compute_apps") or []],
            notes=list(data.get("notes") or []),
            failure=SmiFailure(**failure) if failure else None,
        )

    def used_gpus(self, count: int) -> list[Gpu]:
        return sorted(self.gpus, key=lambda gpu: gpu.index)[: max(count, 1)]


@dataclass(frozen=True)
class OwnedProcess:
    pid: int
    name: str | None
    user: str | None

    def label(self) -> str:
        user = f", user {self.user}" if self.user else ""
        return f"{self.name or 'process'} (pid {self.pid}{user})"


@dataclass(frozen=True)
class HostFacts:
    python_executable: str
    python_version: str | None
    python_error: str
    disk_path: str
    disk_checked_at: str
    disk_free_bytes: int | None
    port_listening: bool
    port_owners: tuple[str, ...]
    nofile_soft: int | None
    nofile_hard: int | None
    port_processes: tuple[OwnedProcess, ...] = ()
    # Users owning the listening sockets (/proc/net/tcp), known even when the processes are not.
    port_socket_users: tuple[str, ...] = ()
    # Processes of the socket users whose descriptors were unreadable (no root): likely holders.
    port_candidates: tuple[OwnedProcess, ...] = ()
    gpu_process_users: dict[int, str | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        python = data.get("python") or {}
        disk = data.get("disk") or {}
        port = data.get("port") or {}
        nofile = data.get("nofile") or {}
        return cls(
            python_executable=str(python.get("executable") or ""),
            python_version=python.get("version"),
            python_error=str(python.get("error") or ""),
            disk_path=str(disk.get("path") or ""),
            disk_checked_at=str(disk.get("checked_at") or ""),
            disk_free_bytes=disk.get("free_bytes"),
            port_listening=bool(port.get("listening")),
            port_owners=tuple(port.get("owners") or ()),
            nofile_soft=nofile.get("soft"),
            nofile_hard=nofile.get("hard"),
            port_processes=tuple(
                OwnedProcess(pid=int(proc["pid"]), name=proc.get("name"), user=proc.get("user"))
                for proc in port.get("processes") or ()
            ),
            port_socket_users=tuple(str(user) for user in port.get("socket_users") or ()),
            port_candidates=tuple(
                OwnedProcess(pid=int(proc["pid"]), name=proc.get("name"), user=proc.get("user"))
                for proc in port.get("unreadable_candidates") or ()
            ),
            gpu_process_users={
                int(proc["pid"]): proc.get("user") for proc in data.get("gpu_processes") or () if proc.get("pid")
            },
        )

    def port_users(self) -> set[str | None]:
        return {proc.user for proc in self.port_processes} | set(self.port_socket_users)


def version_tuple(version: str) -> tuple[int, ...]:
    """Numeric release part: ``0.33.0+cu130`` and ``0.33.0rc1`` compare as 0.33.0."""
    parts = []
    for piece in re.split(r"[.+]", version.strip().lstrip("v")):
        match = re.match(r"[0-9]+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def cuda_for_vllm(vllm_version: str, table: dict[str, Any]) -> dict[str, Any] | None:
    wanted = version_tuple(vllm_version)
    for entry in table.get("vllm_wheels", []):
        if version_tuple(str(entry["from"])) <= wanted < version_tuple(str(entry["until"])):
            return dict(entry)
    return None


def driver_minimum_for_cuda(cuda: str, table: dict[str, Any]) -> dict[str, Any] | None:
    wanted = version_tuple(cuda)[:2]
    best = None
    for entry in table.get("cuda_drivers", []):
        if version_tuple(str(entry["cuda"]))[:2] == wanted:
            return dict(entry)
        if version_tuple(str(entry["cuda"]))[:1] == wanted[:1]:
            best = dict(entry)
    return best


def gb(value_bytes: float) -> str:
    return f"{value_bytes / GIB:.1f} GiB"


def _is_ollama(app: ComputeApp, names: tuple[str, ...]) -> bool:
    return app.basename in names


def _mib(value: int | None) -> str:
    return "[N/A]" if value is None else str(value)


def _unknown_note(gpus: list[Gpu], fields: tuple[str, ...], what: str) -> str:
    """'memory.used reads [N/A] on GPU0, GPU2 (...): <what> could not be checked', or ''."""
    hits = {name: [gpu.index for gpu in gpus if name in gpu.unknown or _missing(gpu, name)] for name in fields}
    parts = [f"{name} reads [N/A] on {', '.join(f'GPU{i}' for i in idx)}" for name, idx in hits.items() if idx]
    if not parts:
        return ""
    return (
        f"{'; '.join(parts)} (MIG slices, some boards and drivers in a bad state report no value): "
        f"{what} could not be checked"
    )


def _missing(gpu: Gpu, name: str) -> bool:
    value = {"memory.total": gpu.memory_total_mib, "memory.used": gpu.memory_used_mib, "compute_cap": gpu.compute_cap}
    return name in value and value[name] is None


UNKNOWN_FIX = (
    "run nvidia-smi on the box and check why the field has no value; vLLM's own start-up check still "
    "applies ('Free memory on device ... less than desired GPU memory utilization')"
)


class Preflight:
    """Runs every check in order; GPU checks become explicit skips on the CPU lab profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        gpu: GpuFacts,
        host: HostFacts,
        shape: ModelShape | None,
        shape_note: str,
        driver_table: dict[str, Any],
    ) -> None:
        self.s = settings
        self.gpu = gpu
        self.host = host
        self.shape = shape
        self.shape_note = shape_note
        self.table = driver_table
        self.plan_details: dict[str, Any] = {}
        self.capacity_details: dict[str, Any] = {}
        self.cutover_details: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _gpu_ready(self) -> bool:
        return self.gpu.present and self.gpu.driver_loaded and bool(self.gpu.gpus)

    def _not_measured(self, name: str) -> CheckResult:
        return CheckResult(name, SKIP, "not measured: no working driver (see nvidia_smi)")

    def _used(self) -> list[Gpu]:
        return self.gpu.used_gpus(self.s.world_size)

    def _is_own_service(self, app: ComputeApp) -> bool:
        # A pid whose user is unknown (gone, another PID namespace) counts as foreign.
        user = self.host.gpu_process_users.get(app.pid) if app.pid is not None else None
        return bool(self.s.service_user) and user == self.s.service_user

    def _is_ollama_runner(self, app: ComputeApp) -> bool:
        return _is_ollama(app, self.s.ollama_process_names) and not self._is_own_service(app)

    def _apps_mib(self, gpu: Gpu, wanted: Callable[[ComputeApp], bool]) -> int:
        apps = (app for app in self.gpu.compute_apps if app.gpu_uuid == gpu.uuid and wanted(app))
        return sum(app.used_memory_mib or 0 for app in apps)

    def _held_mib(self, gpu: Gpu) -> int:
        """Memory other processes hold: never the project's own service (replaced in place);
        Ollama's unless the archive stops it first."""
        held = (gpu.memory_used_mib or 0) - self._apps_mib(gpu, self._is_own_service)
        if self.s.ollama_archive_in_play:
            held -= self._apps_mib(gpu, self._is_ollama_runner)
        return max(held, 0)

    def resolved_dtype(self, cc: tuple[int, int] | None) -> str:
        """The dtype vLLM would load with, as vLLM resolves ``auto``."""
        if self.s.dtype != "auto":
            return self.s.dtype
        config = (self.shape.torch_dtype if self.shape else None) or "bfloat16"
        wanted = "float16" if config in {"float16", "half"} else "bfloat16"
        if cc is not None and cc < BF16_MIN_CC and wanted == "bfloat16":
            refuses = self.shape is not None and self.shape.refuses_float16
            return "float32" if refuses else "float16"
        return wanted

    # -- checks ----------------------------------------------------------------------------
    def check_nvidia_smi(self) -> CheckResult:
        if not self.gpu.present:
            return CheckResult(
                "nvidia_smi",
                FAIL,
                f"nvidia-smi not found: {self.gpu.error or 'not on PATH'}",
                "install the NVIDIA driver (it ships nvidia-smi) or set gpu_preflight_nvidia_smi",
            )
        if self.gpu.failure is not None:
            return CheckResult(
                "nvidia_smi",
                FAIL,
                f"{self.gpu.failure.summary}: {self.gpu.error or 'nvidia-smi failed'}",
                self.gpu.failure.fix,
                {"failure_kind": self.gpu.failure.kind},
            )
        if not self.gpu.driver_loaded:
            return CheckResult(
                "nvidia_smi",
                FAIL,
                f"NVIDIA driver not loaded: {self.gpu.error or 'nvidia-smi failed'}",
                "install or load the NVIDIA driver (lsmod | grep nvidia; reboot after installing), then rerun",
            )
        if not self.gpu.gpus:
            return CheckResult(
                "nvidia_smi", FAIL, "driver loaded but no GPU listed", "check the GPU is visible (lspci)"
            )
        names = sorted({gpu.name for gpu in self.gpu.gpus})
        return CheckResult(
            "nvidia_smi", PASS, f"driver {self.gpu.driver_version}, {len(self.gpu.gpus)} x {', '.join(names)}"
        )

    def check_driver_version(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("driver_version")
        driver = self.gpu.driver_version or (self.gpu.gpus[0].driver_version or "")
        wheel = {"cuda": self.s.cuda_version, "source": "gpu_preflight_cuda_version"} if self.s.cuda_version else None
        wheel = wheel or cuda_for_vllm(self.s.vllm_version, self.table)
        if wheel is None:
            return CheckResult(
                "driver_version",
                WARN,
                f"driver {driver}; no table entry for vLLM {self.s.vllm_version}",
                "set gpu_preflight_cuda_version to the CUDA version of the vLLM build you install",
            )
        cuda = str(wheel["cuda"])
        minimum = driver_minimum_for_cuda(cuda, self.table)
        details = {"driver": driver, "cuda_build": cuda, "cuda_driver_supports": self.gpu.cuda_version}
        if minimum is None:
            return CheckResult(
                "driver_version", WARN, f"driver {driver}; CUDA {cuda} not in the driver table", "", details
            )
        details.update(minimum)
        have = version_tuple(driver)
        measured = f"driver {driver} (CUDA {self.gpu.cuda_version}); vLLM {self.s.vllm_version} wheel needs CUDA {cuda}"
        if have < version_tuple(str(minimum["min_driver"])):
            return CheckResult(
                "driver_version",
                FAIL,
                f"{measured}: driver {minimum['min_driver']} or newer required",
                f"install NVIDIA driver {minimum['min_driver']}+ (branch {str(minimum['min_driver']).split('.')[0]} "
                "or newer), or pin a vLLM build for an older CUDA",
                details,
            )
        if have < version_tuple(str(minimum["toolkit_driver"])):
            return CheckResult(
                "driver_version",
                WARN,
                f"{measured}: works through CUDA minor-version compatibility only",
                f"update the driver to {minimum['toolkit_driver']}+ for PTX JIT and full CUDA {cuda} support",
                details,
            )
        return CheckResult("driver_version", PASS, f"{measured} (minimum {minimum['min_driver']})", "", details)

    def check_gpu_count(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("gpu_count")
        need, have = self.s.world_size, len(self.gpu.gpus)
        measured = (
            f"{have} GPU(s); TP {self.s.tensor_parallel_size} x PP {self.s.pipeline_parallel_size} "
            f"x DP {self.s.data_parallel_size} = {need}"
        )
        if have < need:
            return CheckResult("gpu_count", FAIL, measured, f"lower the parallel sizes so that TP x PP x DP <= {have}")
        return CheckResult("gpu_count", PASS, measured)

    def check_model_shape(self) -> CheckResult:
        if self.shape is None:
            return CheckResult(
                "model_shape",
                FAIL,
                f"model shape unknown: {self.shape_note}",
                "set gpu_preflight_model_config_path to the model's config.json on the box, or add the model to "
                "the role's known-models table",
            )
        shape, tp, pp = self.shape, self.s.tensor_parallel_size, self.s.pipeline_parallel_size
        problems = tensor_parallel_problems(shape, tp)
        if shape.num_hidden_layers < pp:
            problems.append(f"{shape.num_hidden_layers} layers cannot fill pipeline_parallel_size {pp}")
        measured = (
            f"{shape.num_attention_heads} heads, {shape.num_key_value_heads} KV heads, "
            f"{shape.num_hidden_layers} layers, "
            f"head_dim {shape.head_dim}, hidden {shape.hidden_size}, vocab {shape.vocab_size} "
            f"(vLLM pads the vocabulary per rank); TP {tp}, PP {pp}; {self.shape_note}"
        )
        details = shape.to_dict()
        if problems:
            valid = valid_tensor_parallel_sizes(shape, max(8, tp))
            return CheckResult(
                "model_shape",
                FAIL,
                f"{'; '.join(problems)} ({measured})",
                f"use a tensor_parallel_size that divides the heads ({', '.join(map(str, valid))}) and spread "
                "the remaining GPUs with pipeline or data parallelism",
                details,
            )
        return CheckResult("model_shape", PASS, measured, "", details)

    def check_dtype(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("dtype")
        result = self._dtype_result()
        unknown = _unknown_note(self._used(), ("compute_cap",), "bfloat16 support")
        if unknown and result.status == PASS:
            return CheckResult("dtype", WARN, f"{result.measured}; {unknown}", UNKNOWN_FIX)
        return result

    def _dtype_result(self) -> CheckResult:
        used = self._used()
        caps = [cap for gpu in used if (cap := gpu.compute_cap_tuple()) is not None]
        cc = min(caps) if caps else None
        sm = f"sm_{cc[0]}{cc[1]}" if cc else "unknown compute capability"
        refuses = self.shape is not None and self.shape.refuses_float16
        model_type = self.shape.model_type if self.shape else "unknown"
        effective = self.resolved_dtype(cc)
        measured = f"dtype {self.s.dtype} -> {effective} on {sm}"
        if cc is not None and cc < BF16_MIN_CC and refuses and self.s.dtype != "float32":
            return CheckResult(
                "dtype",
                FAIL,
                f"{measured}: vLLM refuses float16 for model type '{model_type}' (numerical instability) and "
                f"{sm} has no bfloat16 (needs compute capability 8.0+)",
                "set dtype float32 (doubles weight and KV memory) or use a GPU with compute capability 8.0+",
            )
        if refuses and effective == "float16":
            return CheckResult(
                "dtype",
                FAIL,
                f"{measured}: vLLM refuses float16 for model type '{model_type}' (numerical instability)",
                "set dtype bfloat16 (compute capability 8.0+) or float32",
            )
        if effective == "bfloat16" and cc is not None and cc < BF16_MIN_CC:
            return CheckResult(
                "dtype",
                FAIL,
                f"{measured}: bfloat16 needs compute capability 8.0+",
                "set dtype float16 (or float32)",
            )
        return CheckResult("dtype", PASS, measured)

    def check_memory_fit(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("memory_fit")
        if self.shape is None:
            return CheckResult("memory_fit", SKIP, "not estimated: model shape unknown (see model_shape)")
        used = self._used()
        no_total = _unknown_note(used, ("memory.total",), "the memory estimate")
        if no_total:
            return CheckResult("memory_fit", WARN, f"not estimated: {no_total}", UNKNOWN_FIX)
        worst = min(used, key=lambda gpu: (gpu.memory_total_mib or 0) - self._held_mib(gpu))
        plan = self._plan(used, worst, self._held_mib(worst), self.s.gpu_memory_utilization)
        self.plan_details = plan.to_dict()
        self.capacity_details = self._capacity(plan, worst, used)
        return self._judge_plan(plan, worst, used)

    def _plan(self, used: list[Gpu], worst: Gpu, held_mib: int, utilization: float) -> MemoryPlan:
        """vLLM's memory plan on the fullest GPU, with what others hold there and the share vLLM may claim."""
        assert self.shape is not None
        cap = worst.compute_cap_tuple()
        return plan_memory(
            self.shape,
            PlanInputs(
                tensor_parallel_size=self.s.tensor_parallel_size,
                pipeline_parallel_size=self.s.pipeline_parallel_size,
                data_parallel_size=self.s.data_parallel_size,
                dtype=self.resolved_dtype(min((c for g in used if (c := g.compute_cap_tuple())), default=cap)),
                kv_cache_dtype=self.s.kv_cache_dtype,
                gpu_total_mib=worst.memory_total_mib or 0,
                held_by_others_mib=held_mib,
                gpu_memory_utilization=utilization,
                max_model_len=self.s.max_model_len,
                students=self.s.students,
                max_num_batched_tokens=self.s.max_num_batched_tokens,
                max_num_seqs=self.s.max_num_seqs,
                activation_reserve_gib=self.s.activation_reserve_gib,
            ),
        )

    def _link(self, used: list[Gpu]) -> str:
        if self.s.nccl_p2p_disable:
            return "host"
        topo = self.gpu.topology
        indices = [gpu.index for gpu in used]
        links = [topo.link(a, b) for i, a in enumerate(indices) for b in indices[i + 1 :]] if topo else [None]
        return "nvlink" if links and all(link is not None and link.kind == "nvlink" for link in links) else "pcie"

    def _capacity(self, plan: MemoryPlan, worst: Gpu, used: list[Gpu]) -> dict[str, Any]:
        assert self.shape is not None
        per_replica = plan.predicted_max_sequences // max(1, self.s.data_parallel_size)
        estimate = estimate_capacity(
            self.shape,
            CapacityInputs(
                gpu_name=worst.name,
                link=self._link(used),
                tensor_parallel_size=self.s.tensor_parallel_size,
                pipeline_parallel_size=self.s.pipeline_parallel_size,
                data_parallel_size=self.s.data_parallel_size,
                weight_bytes=DTYPE_BYTES[plan.dtype],
                kv_bytes_per_token_per_layer=plan.kv_bytes_per_token_per_layer,
                sequences_per_replica=min(per_replica, plan.max_num_seqs),
                prompt_tokens=self.s.capacity_prompt_tokens,
                answer_tokens=self.s.capacity_answer_tokens,
                think_seconds=self.s.capacity_think_seconds,
                slo_ttft_ms=self.s.slo_ttft_p95_ms,
                slo_student_tok_s=self.s.slo_student_tok_s,
            ),
        )
        details: dict[str, Any] = estimate.to_dict()
        return details

    def _judge_plan(self, plan: MemoryPlan, worst: Gpu, used: list[Gpu]) -> CheckResult:
        measured = (
            f"estimate per GPU (GPU{worst.index}): budget {plan.budget_gib_per_gpu} GiB = weights "
            f"{plan.weights_gib_per_gpu} GiB ({plan.dtype}) + reserve {plan.reserve_gib_per_gpu} GiB + KV "
            f"{plan.kv_available_gib_per_gpu} GiB; about {plan.predicted_max_sequences} sequences of "
            f"{self.s.max_model_len} tokens fit for {self.s.students} students"
        )
        if plan.kv_available_gib_per_gpu <= 0:
            return CheckResult(
                "memory_fit",
                FAIL,
                measured,
                "the weights do not fit: raise tensor_parallel_size, use a smaller model or dtype, or raise "
                "gpu_memory_utilization",
                plan.to_dict(),
            )
        if not plan.fits:
            return CheckResult(
                "memory_fit",
                FAIL,
                measured,
                f"lower max_model_len (now {self.s.max_model_len}), raise gpu_memory_utilization or "
                "tensor_parallel_size, or plan for fewer simultaneous students",
                plan.to_dict(),
            )
        if plan.max_num_seqs < self.s.students:
            return CheckResult(
                "memory_fit",
                WARN,
                f"{measured}; max_num_seqs {plan.max_num_seqs} caps the running batch below the student count",
                f"raise max_num_seqs to at least {self.s.students}",
                plan.to_dict(),
            )
        no_used = _unknown_note(used, ("memory.used",), "memory held by other processes (the estimate assumes none)")
        if no_used:
            return CheckResult("memory_fit", WARN, f"{measured}; {no_used}", UNKNOWN_FIX, plan.to_dict())
        return CheckResult("memory_fit", PASS, measured, "", plan.to_dict())

    def check_gpu_memory_free(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("gpu_memory_free")
        used = self._used()
        uuids = {gpu.uuid: gpu.index for gpu in used}
        on_used = [app for app in self.gpu.compute_apps if app.gpu_uuid in uuids]
        own = [app for app in on_used if self._is_own_service(app)]
        holders = [app for app in on_used if not self._is_own_service(app)]

        def listed(apps: list[ComputeApp]) -> str:
            return ", ".join(
                f"GPU{uuids[app.gpu_uuid]}: {app.basename} (pid {app.pid}) {app.used_memory_mib} MiB" for app in apps
            )

        ollama = [app for app in holders if self._is_ollama_runner(app)]
        unknown = _unknown_note(used, ("memory.used", "memory.total"), "free memory")
        short = [
            gpu
            for gpu in used
            if gpu.memory_total_mib is not None
            and gpu.memory_used_mib is not None
            and gpu.memory_total_mib - self._held_mib(gpu) < self.s.gpu_memory_utilization * gpu.memory_total_mib
        ]
        measured_parts = [
            f"GPU{gpu.index}: {_mib(gpu.memory_used_mib)} of {_mib(gpu.memory_total_mib)} MiB in use" for gpu in used
        ]
        measured = "; ".join(measured_parts) + (f"; held by {listed(holders)}" if holders else "; no other processes")
        if own:
            measured += (
                f"; the project's own vLLM service (user {self.s.service_user}) holds {listed(own)}, not counted: "
                "the vllm stage replaces it in place"
            )
        details = {
            "processes": [asdict(app) for app in holders],
            "own_service_processes": [asdict(app) for app in own],
        }
        if ollama and not self.s.ollama_archive_in_play:
            return CheckResult(
                "gpu_memory_free",
                FAIL,
                f"{measured}: Ollama runner holds GPU memory",
                "stop Ollama before vLLM starts (systemctl stop ollama), or run the Ollama archive in the same "
                "play (gpu_preflight_ollama_archive_in_play: true)",
                details,
            )
        if short:
            return CheckResult(
                "gpu_memory_free",
                FAIL,
                f"{measured}: less than gpu_memory_utilization {self.s.gpu_memory_utilization} of the GPU is free, "
                "vLLM will refuse to start ('Free memory on device ... less than desired GPU memory utilization')",
                "stop the processes listed, or lower gpu_memory_utilization below the free share",
                details,
            )
        warning = (
            (unknown, UNKNOWN_FIX)
            if unknown
            else (
                "Ollama runner holds GPU memory; the Ollama archive in this play stops it first",
                "none needed if the archive runs before vLLM; otherwise stop Ollama",
            )
            if ollama
            else (
                "other processes hold GPU memory (counted against the budget)",
                "stop them before vLLM starts if they are not meant to stay",
            )
            if holders
            else None
        )
        if warning:
            return CheckResult("gpu_memory_free", WARN, f"{measured}: {warning[0]}", warning[1], details)
        return CheckResult("gpu_memory_free", PASS, measured, "", details)

    def cutover_plan(self) -> dict[str, Any]:
        """How vLLM starts: the configured share of GPU memory, or (live cut-over) what Ollama leaves free."""
        configured = self.s.gpu_memory_utilization
        if self.s.cutover != "live":
            return {
                "mode": self.s.cutover,
                "live": False,
                "gpu_memory_utilization": configured,
                "reason": "vLLM starts after Ollama is stopped",
            }
        if self.s.profile == "cpu_lab":
            return {
                "mode": "live",
                "live": True,
                "gpu_memory_utilization": configured,
                "reason": "profile cpu_lab: no GPU memory to share; vLLM starts with its configured settings",
            }
        if self.cutover_details:
            return {"mode": "live", **self.cutover_details}
        return {
            "mode": "live",
            "live": False,
            "gpu_memory_utilization": configured,
            "reason": "not measured (see cutover_memory)",
        }

    def check_cutover_memory(self) -> CheckResult:
        if self.s.cutover != "live":
            return CheckResult(
                "cutover_memory", SKIP, f"cut-over {self.s.cutover}: vLLM starts after Ollama is stopped"
            )
        if not self._gpu_ready():
            return self._not_measured("cutover_memory")
        used = self._used()
        unknown = (
            "model shape unknown (see model_shape)"
            if self.shape is None
            else _unknown_note(used, ("memory.used", "memory.total"), "the memory beside Ollama")
        )
        if unknown or self.shape is None:
            return CheckResult(
                "cutover_memory",
                FAIL,
                f"not estimated: {unknown}",
                "set ollama_archive_cutover: outage (students wait while vLLM starts), or give what is missing",
            )

        def beside(gpu: Gpu) -> int:
            # Everything but the project's own service stays while vLLM starts: Ollama's runners included.
            return max((gpu.memory_used_mib or 0) - self._apps_mib(gpu, self._is_own_service), 0)

        worst = min(used, key=lambda gpu: (gpu.memory_total_mib or 0) - beside(gpu))
        total = worst.memory_total_mib or 0
        free_share = (total - beside(worst)) / total if total else 0.0
        share = min(self.s.gpu_memory_utilization, int((free_share - CUTOVER_MARGIN) * 100) / 100)
        measured = (
            f"GPU{worst.index}: {beside(worst)} of {total} MiB held beside vLLM (Ollama's runners "
            f"included), {free_share:.0%} free; vLLM would start at gpu_memory_utilization {share:.2f} "
            f"(configured {self.s.gpu_memory_utilization})"
        )
        fix = (
            "set ollama_archive_cutover: outage (students wait while vLLM starts), or unload Ollama's models "
            "first (ollama stop <model>) so that vLLM fits beside the instances"
        )
        if share <= 0:
            return CheckResult("cutover_memory", FAIL, f"{measured}: no room for vLLM beside Ollama", fix)
        plan = self._plan(used, worst, beside(worst), share)
        measured += (
            f"; then weights {plan.weights_gib_per_gpu} GiB + KV {plan.kv_available_gib_per_gpu} GiB per "
            f"GPU, about {plan.predicted_max_sequences} sequences of {self.s.max_model_len} tokens"
        )
        details = {"gpu_memory_utilization": share, "free_share": round(free_share, 4), "plan": plan.to_dict()}
        if plan.kv_available_gib_per_gpu <= 0 or not plan.fits:
            return CheckResult(
                "cutover_memory", FAIL, f"{measured}: too little for the class beside Ollama", fix, details
            )
        self.cutover_details = {
            "live": True,
            "gpu_memory_utilization": share,
            "reason": f"vLLM fits beside Ollama at {share:.2f} of GPU memory; restarted at "
            f"{self.s.gpu_memory_utilization} once Ollama is stopped",
        }
        return CheckResult("cutover_memory", PASS, measured, "", details)

    def check_interconnect(self) -> CheckResult:
        if not self._gpu_ready():
            return self._not_measured("interconnect")
        tp = self.s.tensor_parallel_size
        indices = [gpu.index for gpu in self._used()][:tp]
        if tp == 1:
            return CheckResult("interconnect", PASS, "tensor_parallel_size 1: no all-reduce between GPUs")
        if self.gpu.topology is None:
            return CheckResult("interconnect", WARN, "topology unknown (nvidia-smi topo -m failed)", "")
        links = [self.gpu.topology.link(a, b) for i, a in enumerate(indices) for b in indices[i + 1 :]]
        labels = sorted({link.label for link in links if link})
        all_nvlink = all(link is not None and link.kind == "nvlink" for link in links)
        measured = f"TP {tp} over GPUs {indices}: links {', '.join(labels) or 'unknown'}"
        if all_nvlink:
            return CheckResult("interconnect", PASS, f"{measured} (NVLink)")
        if tp > 2:
            return CheckResult(
                "interconnect",
                WARN,
                f"{measured}: PCIe only; vLLM disables its custom all-reduce for more than two PCIe-only GPUs",
                "prefer pipeline parallelism or data parallelism (one replica per GPU) over TP > 2 on PCIe; if NCCL "
                "hangs, disable ACS/IOMMU (BIOS, setpci, pci=noacs) or set NCCL_P2P_DISABLE=1 with "
                "--disable-custom-all-reduce; diagnose with NCCL_DEBUG=INFO",
            )
        return CheckResult("interconnect", PASS, f"{measured} (PCIe; custom all-reduce still runs at two GPUs)")

    def check_python(self) -> CheckResult:
        host = self.host
        if not host.python_version:
            return CheckResult(
                "python_version",
                FAIL,
                f"{host.python_executable or 'python'}: {host.python_error or 'not found'}",
                f"install one of Python {', '.join(self.s.python_versions)} on the box",
            )
        short = ".".join(host.python_version.split(".")[:2])
        measured = f"{host.python_executable} is Python {host.python_version}"
        if short not in self.s.python_versions:
            return CheckResult(
                "python_version",
                FAIL,
                f"{measured}; vLLM {self.s.vllm_version} supports {', '.join(self.s.python_versions)}",
                "point gpu_preflight_python_executable at a supported interpreter",
            )
        return CheckResult("python_version", PASS, measured)

    def check_disk(self) -> CheckResult:
        host, need = self.host, self.s.min_free_disk_gib
        if host.disk_free_bytes is None:
            return CheckResult("disk_space", FAIL, f"could not measure free disk for {host.disk_path}", "")
        free_gib = host.disk_free_bytes / GIB
        measured = f"{free_gib:.0f} GiB free at {host.disk_checked_at} (for {host.disk_path}); need {need:g} GiB"
        if free_gib < need:
            return CheckResult(
                "disk_space", FAIL, measured, "free space there or move gpu_preflight_venv_path to a larger disk"
            )
        return CheckResult("disk_space", PASS, measured)

    def check_port(self) -> CheckResult:
        port, host = self.s.service_port, self.host
        if not host.port_listening:
            return CheckResult("service_port", PASS, f"port {port} is free")
        processes = ", ".join(proc.label() for proc in host.port_processes)
        users = host.port_users()
        if self.s.service_user and users == {self.s.service_user}:
            candidates = ", ".join(proc.label() for proc in host.port_candidates)
            held_by = processes or (
                f"socket owned by that user, holder not readable without root; its processes: {candidates}"
                if candidates
                else "socket owned by that user, holder not readable without root"
            )
            return CheckResult(
                "service_port",
                PASS,
                f"port {port} is held by the project's own vLLM service (user {self.s.service_user}): {held_by}; "
                "the vllm stage replaces it in place",
            )
        owners = processes or ", ".join(host.port_owners)
        unlisted = sorted(set(host.port_socket_users) - {proc.user for proc in host.port_processes})
        if unlisted:
            owners = "; ".join(filter(None, [owners, f"socket owned by user {', '.join(unlisted)}"]))
        return CheckResult(
            "service_port",
            FAIL,
            f"port {port} already has a listener ({owners or 'unknown process'})",
            "stop that service or choose another gpu_preflight_service_port",
        )

    def check_nofile(self) -> CheckResult:
        soft, hard = self.host.nofile_soft, self.host.nofile_hard
        # None is RLIM_INFINITY as the host-facts module reports it.
        measured = f"nofile soft {soft or 'unlimited'}, hard {hard or 'unlimited'}; want {self.s.min_nofile}"
        if hard is not None and hard < self.s.min_nofile:
            return CheckResult(
                "nofile",
                WARN,
                f"{measured}: vLLM raises its soft limit to 65535 and warns when the hard limit is lower",
                f"set LimitNOFILE={self.s.min_nofile} in the vLLM unit (systemd) or raise the hard limit in "
                "/etc/security/limits.d",
            )
        return CheckResult("nofile", PASS, measured)

    def run(self) -> list[CheckResult]:
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            ("nvidia_smi", self.check_nvidia_smi),
            ("driver_version", self.check_driver_version),
            ("gpu_count", self.check_gpu_count),
            ("model_shape", self.check_model_shape),
            ("dtype", self.check_dtype),
            ("memory_fit", self.check_memory_fit),
            ("gpu_memory_free", self.check_gpu_memory_free),
            ("cutover_memory", self.check_cutover_memory),
            ("interconnect", self.check_interconnect),
            ("python_version", self.check_python),
            ("disk_space", self.check_disk),
            ("service_port", self.check_port),
            ("nofile", self.check_nofile),
        ]
        results = []
        for name, check in checks:
            if self.s.profile == "cpu_lab" and name in GPU_CHECKS:
                results.append(CheckResult(name, SKIP, "skipped: profile cpu_lab expects no GPU"))
                continue
            results.append(check())
        return results


def verdict(results: list[CheckResult]) -> str:
    statuses = {result.status for result in results}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def render_table(results: list[CheckResult]) -> list[str]:
    """Fixed-width lines for the play output (a debug task prints them one per line)."""
    width = max(len(result.name) for result in results)
    lines = [f"{'check'.ljust(width)}  status  measured"]
    for result in results:
        lines.append(f"{result.name.ljust(width)}  {result.status.upper():6}  {result.measured}")
        if result.remediation and result.status in {FAIL, WARN}:
            lines.append(f"{''.ljust(width)}  {'':6}  fix: {result.remediation} (see {help_link(result.name)})")
    return lines


def failure_message(results: list[CheckResult]) -> str:
    failed = [result for result in results if result.status == FAIL]
    items = [
        f"{result.name}: {result.measured} -- fix: {result.remediation} (see {help_link(result.name)})"
        for result in failed
    ]
    return f"gpu_preflight: {len(failed)} check(s) failed: " + " | ".join(items)
