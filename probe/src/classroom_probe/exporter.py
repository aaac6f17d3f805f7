"""GPU exporter for Prometheus: per-GPU utilisation, memory, temperature and power, and the processes holding
GPU memory, read through NVML (the probe's sampler, classroom_probe.gpu) at every scrape.

    python -m classroom_probe.exporter --listen 127.0.0.1 --port 9836
    python -m classroom_probe.exporter --once      # print one scrape and exit

Needs the `exporter` extra (prometheus-client). A box without a GPU, without the NVIDIA driver or without
nvidia-ml-py is not an error: the exporter serves `classroom_gpu_count 0` and says why in
`classroom_gpu_exporter_info{reason=...}`, and tries NVML again at most once per retry interval, so a driver
that loads after the exporter started is picked up without a restart."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Protocol, cast

from classroom_probe.gpu import GpuInfo, GpuProcess, GpuReading, _Nvml

if TYPE_CHECKING:  # the extra is imported where it is used, so that its absence is a message, not a traceback
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

DEFAULT_PORT = 9836
GPU_LABELS = ("gpu", "name", "uuid")

# NVML's exception class names (pynvml builds one per NVML_ERROR_*), and the reason each one is published as.
_NVML_REASONS: dict[str, tuple[str, str]] = {
    "NVMLError_LibraryNotFound": ("no_driver", "the NVIDIA driver's NVML library (libnvidia-ml.so.1) is not installed"),
    "NVMLError_DriverNotLoaded": ("driver_not_loaded", "the NVIDIA kernel driver is not loaded"),
    "NVMLError_LibRmVersionMismatch": ("driver_mismatch", "the NVML library and the loaded kernel driver differ "
                                                          "(upgraded without a reboot?)"),
    "NVMLError_NoPermission": ("no_permission", "no permission to open the GPU devices"),
    "NVMLError_GpuIsLost": ("gpu_lost", "a GPU fell off the bus"),
}


class Reader(Protocol):
    """What the exporter needs from NVML (classroom_probe.gpu._Nvml in service, a stand-in in tests)."""

    def inventory(self) -> tuple[list[GpuInfo], str | None]: ...
    def readings(self) -> list[GpuReading]: ...
    def processes(self) -> list[GpuProcess]: ...
    def close(self) -> None: ...


def classify(exc: BaseException) -> tuple[str, str]:
    """The reason label and a sentence for an NVML that could not be opened or read."""
    if isinstance(exc, ImportError):
        return "no_nvml_module", "nvidia-ml-py (module pynvml) is not installed"
    name = type(exc).__name__
    if name in _NVML_REASONS:
        return _NVML_REASONS[name]
    if isinstance(exc, RuntimeError) and "no GPU" in str(exc):
        return "no_gpu", "NVML sees no GPU"
    return "nvml_error", f"{name}: {exc}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One scrape's worth of readings, or why there are none."""

    reason: str
    detail: str
    driver_version: str | None = None
    readings: tuple[GpuReading, ...] = ()
    processes: tuple[GpuProcess, ...] = ()


@dataclass(slots=True)
class GpuState:
    """Opens NVML lazily and again after a failure, at most once per retry interval; reads under one lock."""

    open_reader: Callable[[], Reader]
    retry_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    read_errors: int = 0
    _reader: Reader | None = None
    _driver: str | None = None
    _last_try: float | None = None
    _absent: tuple[str, str] = ("not_opened", "NVML not opened yet")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _open(self) -> None:
        now = self.clock()
        if self._last_try is not None and now - self._last_try < self.retry_s:
            return
        self._last_try = now
        try:
            reader = self.open_reader()
        except Exception as exc:  # every failure to open is a published reason, never a crash
            self._absent = classify(exc)
            return
        self._reader = reader
        self._driver = reader.inventory()[1]

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._reader is None:
                self._open()
            if self._reader is None:
                return Snapshot(*self._absent)
            try:
                readings, processes = self._reader.readings(), self._reader.processes()
            except Exception as exc:  # a GPU lost or a driver unloaded mid-run: publish it, reopen later
                self.read_errors += 1
                self._reader.close()
                self._reader = None
                self._absent = (classify(exc)[0] if type(exc).__name__ in _NVML_REASONS else "read_failed",
                                f"reading the GPUs failed: {type(exc).__name__}: {exc}")
                return Snapshot(*self._absent)
            return Snapshot("ok", "", self._driver, tuple(readings), tuple(processes))

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _labels(r: GpuReading) -> list[str]:
    return [str(r.index), r.name, r.uuid]


def families(snap: Snapshot, read_errors: int) -> list[Metric]:
    """The metric families of one snapshot (prometheus_client imported here: the extra is needed only to serve)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

    count = GaugeMetricFamily("classroom_gpu_count", "GPUs the exporter sees (0: see classroom_gpu_exporter_info)")
    count.add_metric([], len(snap.readings))
    info = GaugeMetricFamily("classroom_gpu_exporter_info",
                             "Always 1; reason is ok, or why no GPU is seen (no_driver, no_gpu, ...)",
                             labels=["reason", "detail", "driver_version"])
    info.add_metric([snap.reason, snap.detail, snap.driver_version or ""], 1)
    errors = CounterMetricFamily("classroom_gpu_exporter_read_errors", "Readings of open GPUs that failed")
    errors.add_metric([], read_errors)
    per_gpu: list[tuple[str, str, Callable[[GpuReading], float | None]]] = [
        ("classroom_gpu_utilization_ratio", "Share of the last sample period a kernel ran (NVML utilization.gpu / 100)",
         lambda r: None if r.util_pct is None else r.util_pct / 100.0),
        ("classroom_gpu_memory_used_bytes", "GPU memory in use", lambda r: r.mem_used_bytes),
        ("classroom_gpu_memory_total_bytes", "GPU memory installed", lambda r: r.mem_total_bytes),
        ("classroom_gpu_temperature_celsius", "GPU core temperature", lambda r: r.temperature_c),
        ("classroom_gpu_power_watts", "Board power draw", lambda r: r.power_w),
    ]
    out: list[Metric] = [count, info, errors]
    for name, doc, value in per_gpu:
        fam = GaugeMetricFamily(name, doc, labels=list(GPU_LABELS))
        for r in snap.readings:
            v = value(r)
            if v is not None:
                fam.add_metric(_labels(r), float(v))
        out.append(fam)
    by_index = {r.index: r for r in snap.readings}
    procs = GaugeMetricFamily("classroom_gpu_process_memory_used_bytes", "GPU memory a process holds",
                              labels=[*GPU_LABELS, "pid", "process"])
    for p in snap.processes:
        gpu = by_index.get(p.gpu)
        if gpu is not None and p.mem_used_bytes is not None:
            procs.add_metric([*_labels(gpu), str(p.pid), p.name], float(p.mem_used_bytes))
    out.append(procs)
    return out


class GpuCollector:
    """A prometheus_client collector: one NVML reading per scrape."""

    def __init__(self, state: GpuState) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        snap = self.state.snapshot()
        return families(snap, self.state.read_errors)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1-65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 s, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m classroom_probe.exporter",
                                 description="Serve per-GPU readings from NVML in Prometheus' text format.")
    ap.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    ap.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    ap.add_argument("--retry-interval", type=_seconds, default=60.0,
                    help="seconds between two tries to open NVML while no GPU is seen (default 60)")
    ap.add_argument("--once", action="store_true", help="print one scrape to stdout and exit")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None, open_reader: Callable[[], Reader] = _Nvml) -> int:
    args = parse_args(argv)
    try:
        from prometheus_client import CollectorRegistry, generate_latest, start_http_server  # noqa: PLC0415
        from prometheus_client.process_collector import ProcessCollector  # noqa: PLC0415
    except ImportError:
        print("the exporter needs prometheus-client: install classroom_probe[exporter]", file=sys.stderr)
        return 2
    state = GpuState(open_reader, retry_s=args.retry_interval)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(cast("Collector", GpuCollector(state)))
    if args.once:
        sys.stdout.write(generate_latest(registry).decode("utf-8"))
        state.close()
        return 0
    # The exporter's own CPU and memory, for the monitoring stack's cost.
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(args.port, args.listen, registry)
    except OSError as exc:
        print(f"cannot listen on {args.listen}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"serving GPU metrics on http://{args.listen}:{args.port}/metrics", file=sys.stderr, flush=True)
    stop.wait()
    server.shutdown()
    thread.join(5)
    state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
