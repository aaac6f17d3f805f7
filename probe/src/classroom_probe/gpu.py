"""1 Hz GPU sampler: NVML when importable, else `nvidia-smi` CSV, else recorded as absent.

Besides utilisation and memory over time it records what the GPUs are: name, memory and driver. Through NVML
it also takes the fuller reading the GPU exporter publishes (temperature, power, the processes holding memory)."""

import asyncio
import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

SMI_QUERY = ("--query-gpu=index,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits")
SMI_INVENTORY = ("--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits")


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mib: float | None


@dataclass(slots=True)
class GpuSample:
    t_ns: int
    index: int
    util_pct: float | None
    mem_used_mib: float | None


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one moment, as the exporter publishes it; what the GPU will not tell is None."""

    index: int
    name: str
    uuid: str
    util_pct: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding memory on one GPU; its memory is None where the driver will not say."""

    gpu: int
    pid: int
    name: str
    mem_used_bytes: int | None


@dataclass(slots=True)
class GpuSeries:
    """What the sampler saw: the source (`nvml`, `smi` or `absent`), why if absent, and the samples."""

    source: str = "absent"
    reason: str = ""
    samples: list[GpuSample] = field(default_factory=list)
    gpus: list[GpuInfo] = field(default_factory=list)
    driver_version: str | None = None

    def means(self, start_ns: int | None = None, end_ns: int | None = None) -> dict[int, float]:
        """Mean utilisation per GPU over samples inside [start, end]."""
        sums: dict[int, list[float]] = {}
        for s in self.samples:
            if s.util_pct is None:
                continue
            if (start_ns is not None and s.t_ns < start_ns) or (end_ns is not None and s.t_ns > end_ns):
                continue
            acc = sums.setdefault(s.index, [0.0, 0.0])
            acc[0] += s.util_pct
            acc[1] += 1
        return {i: acc[0] / acc[1] for i, acc in sorted(sums.items())}


def _num(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_smi_csv(text: str, t_ns: int = 0) -> list[GpuSample]:
    """Parse `index, util, mem.used[, ...]` lines; a leading `timestamp` column (with `/` or `:`) is skipped."""
    out: list[GpuSample] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split(",")]
        if cols and ("/" in cols[0] or ":" in cols[0]):
            cols = cols[1:]
        if len(cols) < 3:
            continue
        try:
            index = int(cols[0])
        except ValueError:
            continue
        out.append(GpuSample(t_ns, index, _num(cols[1]), _num(cols[2])))
    return out


def parse_smi_inventory(text: str) -> tuple[list[GpuInfo], str | None]:
    """Parse `index, name, memory.total, driver_version` lines."""
    gpus: list[GpuInfo] = []
    driver: str | None = None
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 4:
            continue
        try:
            index = int(cols[0])
        except ValueError:
            continue
        gpus.append(GpuInfo(index, cols[1], _num(cols[2])))
        driver = driver or cols[3] or None
    return gpus, driver


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _or_none(read: Any, *args: object) -> Any:
    """One NVML reading, or None where this GPU does not support it (power on some boards, temperature in MIG)."""
    try:
        return read(*args)
    except Exception:
        return None


def _process_name(pid: int, nvml_name: Any) -> str:
    """NVML's name for the process, else the kernel's (a sandboxed reader may be refused either)."""
    name = _text(nvml_name).strip() if nvml_name is not None else ""
    if not name:
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    return name.rsplit("/", 1)[-1] or "unknown"


class _Nvml:
    def __init__(self) -> None:
        import pynvml  # noqa: PLC0415  (optional dependency)

        self._nvml: Any = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        if not self._handles:
            raise RuntimeError("NVML sees no GPU")

    def inventory(self) -> tuple[list[GpuInfo], str | None]:
        """Names, memory and driver; what NVML will not tell stays unknown (never raises)."""
        nv = self._nvml
        gpus = []
        try:
            for i, h in enumerate(self._handles):
                gpus.append(GpuInfo(i, _text(nv.nvmlDeviceGetName(h)),
                                    round(nv.nvmlDeviceGetMemoryInfo(h).total / 2**20, 1)))
            return gpus, _text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            return gpus, None

    def read(self, t_ns: int) -> list[GpuSample]:
        out = []
        for i, h in enumerate(self._handles):
            util = float(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu)
            mem = self._nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20
            out.append(GpuSample(t_ns, i, util, round(mem, 1)))
        return out

    def readings(self) -> list[GpuReading]:
        """Every GPU's full reading; a reading one GPU does not support is None, any other error raises."""
        nv = self._nvml
        out = []
        for i, h in enumerate(self._handles):
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            power_mw = _or_none(nv.nvmlDeviceGetPowerUsage, h)
            temperature = _or_none(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            out.append(GpuReading(
                index=i, name=_text(nv.nvmlDeviceGetName(h)), uuid=_text(nv.nvmlDeviceGetUUID(h)),
                util_pct=float(nv.nvmlDeviceGetUtilizationRates(h).gpu),
                mem_used_bytes=int(mem.used), mem_total_bytes=int(mem.total),
                temperature_c=None if temperature is None else float(temperature),
                power_w=None if power_mw is None else power_mw / 1000.0))
        return out

    def processes(self) -> list[GpuProcess]:
        """Compute and graphics processes per GPU, each once (a process doing both is listed by both calls)."""
        nv = self._nvml
        out = []
        for i, h in enumerate(self._handles):
            seen: set[int] = set()
            for read in (nv.nvmlDeviceGetComputeRunningProcesses, nv.nvmlDeviceGetGraphicsRunningProcesses):
                for p in _or_none(read, h) or []:
                    pid = int(p.pid)
                    if pid in seen:
                        continue
                    seen.add(pid)
                    used = getattr(p, "usedGpuMemory", None)
                    out.append(GpuProcess(i, pid, _process_name(pid, _or_none(nv.nvmlSystemGetProcessName, pid)),
                                          None if used is None else int(used)))
        return out

    def close(self) -> None:
        # Shutdown errors change nothing already measured.
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


async def _smi_run(smi: str, query: tuple[str, ...], timeout: float = 5.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        smi, *query, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"nvidia-smi exited {proc.returncode}")
    return out.decode("utf-8", "replace")


async def _smi_read(smi: str, t_ns: int) -> list[GpuSample]:
    return parse_smi_csv(await _smi_run(smi, SMI_QUERY), t_ns)


class GpuSampler:
    """Samples every GPU once a second until stopped; `series` holds the result."""

    def __init__(self, mode: str, interval: float = 1.0, max_samples: int = 7 * 24 * 3600) -> None:
        self.mode = mode
        self.interval = interval
        self.max_samples = max_samples
        self.series = GpuSeries()
        self._nvml: _Nvml | None = None
        self._smi: str | None = None

    async def open(self) -> None:
        """Pick the source. Never raises: a machine without GPUs records `absent` and why."""
        if self.mode == "off":
            self.series.reason = "disabled (--gpu off)"
            return
        reasons = []
        if self.mode in ("auto", "nvml"):
            try:
                self._nvml = _Nvml()
                self.series.source = "nvml"
                self.series.gpus, self.series.driver_version = self._nvml.inventory()
                return
            except Exception as exc:
                reasons.append(f"NVML unavailable ({type(exc).__name__}: {exc})")
        if self.mode in ("auto", "smi"):
            smi = shutil.which("nvidia-smi")
            if smi is None:
                reasons.append("nvidia-smi not on PATH")
            else:
                try:
                    first = await _smi_read(smi, perf_counter_ns())
                    if first:
                        self._smi = smi
                        self.series.source = "smi"
                        await self._smi_inventory(smi)
                        return
                    reasons.append("nvidia-smi listed no GPU")
                except (OSError, RuntimeError, TimeoutError) as exc:
                    reasons.append(f"nvidia-smi failed ({exc})")
        self.series.reason = "; ".join(reasons)

    async def _smi_inventory(self, smi: str) -> None:
        try:
            self.series.gpus, self.series.driver_version = parse_smi_inventory(await _smi_run(smi, SMI_INVENTORY))
        except (OSError, RuntimeError, TimeoutError):
            return  # names and driver stay unknown; sampling goes on

    async def sample_once(self) -> None:
        t = perf_counter_ns()
        try:
            if self._nvml is not None:
                self.series.samples.extend(await asyncio.to_thread(self._nvml.read, t))
            elif self._smi is not None:
                self.series.samples.extend(await _smi_read(self._smi, t))
        except Exception as exc:
            self.series.reason = f"sample failed: {type(exc).__name__}: {exc}"

    async def loop(self, stop: asyncio.Event) -> None:
        if self._nvml is None and self._smi is None:
            return
        for _ in range(self.max_samples):
            await self.sample_once()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
                return
            except TimeoutError:
                continue

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
