"""The GPU exporter: NVML readings published per GPU and per process, every reason for seeing no GPU, NVML opened
again after a failure, and the served page, against a stand-in pynvml (no GPU here) and the real HTTP server."""

import os
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from classroom_probe.exporter import GpuCollector, GpuState, classify, families, main
from classroom_probe.gpu import _Nvml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
GIB = 2**30


class NVMLError(Exception):
    pass


def nvml_error(name: str) -> type[NVMLError]:
    """pynvml names one class per NVML_ERROR_* this way; the exporter classifies by the name."""
    return type(name, (NVMLError,), {})


def fake_pynvml(gpus: int = 2, init_error: type[Exception] | None = None) -> types.ModuleType:
    """Two H200-like GPUs: GPU 1 reports no power (as boards without a sensor do); a process on both GPUs and one
    whose memory the driver will not tell; the process name from NVML for one pid, from /proc for ours."""
    m = types.ModuleType("pynvml")
    m.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    state: dict[str, Any] = {"shutdown": 0, "fail_reads": None}
    m.state = state  # type: ignore[attr-defined]
    own = os.getpid()

    def init() -> None:
        if init_error is not None:
            raise init_error()

    def handle(i: int) -> int:
        return i

    def util(h: int) -> Any:
        if state["fail_reads"] is not None:
            raise state["fail_reads"]()
        return types.SimpleNamespace(gpu=[90, 5][h])

    def memory(h: int) -> Any:
        return types.SimpleNamespace(used=[70 * GIB, 1 * GIB][h], total=141 * GIB)

    def power(h: int) -> int:
        if h == 1:
            raise nvml_error("NVMLError_NotSupported")()
        return 412_345

    def compute(h: int) -> list[Any]:
        if h == 0:
            return [types.SimpleNamespace(pid=4242, usedGpuMemory=69 * GIB),
                    types.SimpleNamespace(pid=own, usedGpuMemory=None)]
        return [types.SimpleNamespace(pid=4242, usedGpuMemory=GIB // 2)]

    def graphics(h: int) -> list[Any]:
        return [types.SimpleNamespace(pid=4242, usedGpuMemory=69 * GIB)] if h == 0 else []

    def process_name(pid: int) -> bytes:
        if pid == 4242:
            return b"/opt/vllm/venv/bin/python"
        raise nvml_error("NVMLError_NotFound")()

    def shutdown() -> None:
        state["shutdown"] += 1

    for name, fn in {
        "nvmlInit": init, "nvmlShutdown": shutdown, "nvmlDeviceGetCount": lambda: gpus,
        "nvmlDeviceGetHandleByIndex": handle, "nvmlDeviceGetName": lambda h: b"NVIDIA H200",
        "nvmlDeviceGetUUID": lambda h: f"GPU-{h:04d}", "nvmlSystemGetDriverVersion": lambda: "580.159.04",
        "nvmlDeviceGetUtilizationRates": util, "nvmlDeviceGetMemoryInfo": memory,
        "nvmlDeviceGetTemperature": lambda h, sensor: [61, 38][h], "nvmlDeviceGetPowerUsage": power,
        "nvmlDeviceGetComputeRunningProcesses": compute, "nvmlDeviceGetGraphicsRunningProcesses": graphics,
        "nvmlSystemGetProcessName": process_name,
    }.items():
        setattr(m, name, fn)
    return m


@pytest.fixture
def pynvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    m = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", m)
    yield m


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def scrape(state: GpuState) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector(state))  # type: ignore[arg-type]
    return samples(generate_latest(registry).decode())


def test_readings_per_gpu_and_per_process(pynvml: types.ModuleType) -> None:
    got = scrape(GpuState(_Nvml))
    assert got["classroom_gpu_count"] == [({}, 2.0)]
    assert got["classroom_gpu_exporter_info"] == [({"reason": "ok", "detail": "", "driver_version": "580.159.04"}, 1.0)]
    gpu0 = {"gpu": "0", "name": "NVIDIA H200", "uuid": "GPU-0000"}
    gpu1 = {"gpu": "1", "name": "NVIDIA H200", "uuid": "GPU-0001"}
    assert got["classroom_gpu_utilization_ratio"] == [(gpu0, 0.9), (gpu1, 0.05)]
    assert got["classroom_gpu_memory_used_bytes"] == [(gpu0, 70.0 * GIB), (gpu1, 1.0 * GIB)]
    assert got["classroom_gpu_memory_total_bytes"] == [(gpu0, 141.0 * GIB), (gpu1, 141.0 * GIB)]
    assert got["classroom_gpu_temperature_celsius"] == [(gpu0, 61.0), (gpu1, 38.0)]
    # GPU 1 has no power sensor: no sample, rather than a false 0 W.
    assert got["classroom_gpu_power_watts"] == [(gpu0, 412.345)]
    # The process listed by both the compute and the graphics call is counted once per GPU; our own process has
    # no memory figure and is left out; the name is the executable's, not its path.
    assert got["classroom_gpu_process_memory_used_bytes"] == [
        ({**gpu0, "pid": "4242", "process": "python"}, 69.0 * GIB),
        ({**gpu1, "pid": "4242", "process": "python"}, 0.5 * GIB)]


def test_a_process_name_nvml_will_not_give_comes_from_proc(pynvml: types.ModuleType) -> None:
    procs = _Nvml().processes()
    own = [p for p in procs if p.pid == os.getpid()]
    assert len(own) == 1 and own[0].mem_used_bytes is None
    assert own[0].name == Path("/proc/self/comm").read_text().strip()


@pytest.mark.parametrize(("error", "reason"), [
    ("NVMLError_LibraryNotFound", "no_driver"),
    ("NVMLError_DriverNotLoaded", "driver_not_loaded"),
    ("NVMLError_LibRmVersionMismatch", "driver_mismatch"),
    ("NVMLError_NoPermission", "no_permission"),
    ("NVMLError_Unknown", "nvml_error"),
])
def test_nvml_that_will_not_open_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch, error: str,
                                                         reason: str) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=nvml_error(error)))
    got = scrape(GpuState(_Nvml))
    assert got["classroom_gpu_count"] == [({}, 0.0)]
    (labels, value), = got["classroom_gpu_exporter_info"]
    assert labels["reason"] == reason and value == 1.0 and labels["detail"]
    assert "classroom_gpu_utilization_ratio" not in got


def test_no_module_and_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert scrape(GpuState(_Nvml))["classroom_gpu_exporter_info"][0][0]["reason"] == "no_nvml_module"
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus=0))
    got = scrape(GpuState(_Nvml))
    assert got["classroom_gpu_exporter_info"][0][0]["reason"] == "no_gpu"
    assert got["classroom_gpu_count"] == [({}, 0.0)]
    assert classify(ValueError("odd")) == ("nvml_error", "ValueError: odd")


def test_nvml_is_tried_again_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that loads after the exporter started is picked up without a restart, and a box without one is
    not asked on every scrape."""
    now = [0.0]
    opens: list[float] = []
    broken = fake_pynvml(init_error=nvml_error("NVMLError_DriverNotLoaded"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)

    def opener() -> _Nvml:
        opens.append(now[0])
        return _Nvml()

    state = GpuState(opener, retry_s=60, clock=lambda: now[0])
    assert state.snapshot().reason == "driver_not_loaded"
    now[0] = 30
    assert state.snapshot().reason == "driver_not_loaded"
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    now[0] = 61
    assert state.snapshot().reason == "ok"
    assert opens == [0.0, 61]


def test_a_read_that_fails_is_counted_and_nvml_reopened(pynvml: types.ModuleType) -> None:
    now = [0.0]
    state = GpuState(_Nvml, retry_s=10, clock=lambda: now[0])
    assert len(state.snapshot().readings) == 2
    pynvml.state["fail_reads"] = nvml_error("NVMLError_GpuIsLost")
    snap = state.snapshot()
    assert (snap.reason, snap.readings, state.read_errors) == ("gpu_lost", (), 1)
    assert pynvml.state["shutdown"] == 1
    pynvml.state["fail_reads"] = None
    now[0] = 11
    assert state.snapshot().reason == "ok"
    fams = {f.name: f for f in families(state.snapshot(), state.read_errors)}
    assert fams["classroom_gpu_exporter_read_errors"].samples[0].value == 1


def test_once_prints_a_scrape(pynvml: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--once"]) == 0
    assert samples(capsys.readouterr().out)["classroom_gpu_count"] == [({}, 2.0)]
    assert pynvml.state["shutdown"] == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exporter(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "probe" / "src")}
    return subprocess.Popen([sys.executable, "-m", "classroom_probe.exporter", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_serves_on_loopback_and_stops_on_sigterm() -> None:
    """As the unit runs it, on a machine with no NVML: the page says why, and SIGTERM ends it cleanly."""
    port = free_port()
    proc = exporter("--listen", "127.0.0.1", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.2)
        got = samples(text)
        assert got["classroom_gpu_count"] == [({}, 0.0)]
        assert got["classroom_gpu_exporter_info"][0][0]["reason"] in {"no_nvml_module", "no_driver"}
        assert "process_resident_memory_bytes" in got
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"serving GPU metrics on http://127.0.0.1:{port}/metrics" in err


def test_bad_arguments_and_a_taken_port_are_one_line_each() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = exporter("--port", str(port))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    for bad, words in ((["--port", "70000"], "port 70000 is outside 1-65535"),
                       (["--port", "http"], "not a port number: 'http'"),
                       (["--retry-interval", "0"], "must be more than 0 s")):
        proc = exporter(*bad)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and words in err and "Traceback" not in err, err
