"""Where the load runs: in this process, or spread over load processes for a big box.

One event loop tops out near 16-18K output tokens/s, so a large class on a fast server needs
several. Each load process has its own event loop (with the poll-time clock), its own connection
pool and its own share of the students, requests or arrivals (`loads.Share`); the parent keeps
the GPU and /metrics sampling, the progress line and the judging. A process reports its running
totals twice a second and, after each phase, its aggregator (the reservoirs included); the parent
merges them, so the report holds one set of statistics. Records go to one file per process,
joined at the end. The processes start with "spawn": no state of the parent is copied into them.
"""

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Literal

import aiohttp

from classroom_probe import loads
from classroom_probe.client import Dispatcher, Endpoint
from classroom_probe.clock import Clock, selector_of, stamping_loop
from classroom_probe.config import Config
from classroom_probe.errors import BadInput, ProbeError
from classroom_probe.health import HealthMonitor, HealthSeries
from classroom_probe.metrics import Aggregator, Slo
from classroom_probe.outputs import RecordsWriter
from classroom_probe.records import Live, LiveSnapshot, RequestRecord
from classroom_probe.stats import Reservoir

# A stream on a fast GPU server runs at up to about 150 tok/s; one process is given about half of
# what one event loop can take (16-18K tok/s measured), so its lag stays low.
PER_STREAM_TOK_S = 150.0
TOK_S_PER_PROCESS = 8000.0
BATCH_TIME_CAP_S = 24 * 3600.0
START_TIMEOUT_S = 120.0
TICK_S = 0.5


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def expected_tok_s(config: Config) -> float:
    """The most output tokens per second the load can ask for (what sizes the load processes)."""
    if config.mode == "rate":
        assert config.rate is not None  # validated
        return min(config.rate * config.max_tokens, config.rate_concurrency * PER_STREAM_TOK_S)
    return config.max_streams * PER_STREAM_TOK_S


def choose_workers(config: Config, cpus: int, hooked: bool) -> int:
    """Load processes: the configured number, else enough for the expected rate, one core left free."""
    if config.workers is not None:
        if hooked and config.workers > 1:
            raise BadInput("--workers", "a per-request hook (on_record) needs the load in this process: workers 1")
        return min(config.workers, config.max_streams)
    if hooked:
        return 1
    want = math.ceil(expected_tok_s(config) / TOK_S_PER_PROCESS)
    return max(1, min(want, cpus - 1, config.max_streams))


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    kind: Literal["classroom", "batch", "rate"]
    phase: loads.Phase
    students: int = 0
    seed: int = 0
    origin_ns: int = 0  # the run's time zero, for records.jsonl


@dataclass(slots=True)
class PhaseResult:
    aggregator: Aggregator
    cancelled: int
    dispatch_lag_ms: Reservoir | None

    def merge(self, other: "PhaseResult") -> None:
        self.aggregator.merge(other.aggregator)
        self.cancelled += other.cancelled
        if other.dispatch_lag_ms is not None:
            if self.dispatch_lag_ms is None:
                self.dispatch_lag_ms = other.dispatch_lag_ms
            else:
                self.dispatch_lag_ms.merge(other.dispatch_lag_ms)


def slo(config: Config) -> Slo:
    return Slo(config.limits.ttft_p95_ms_max, config.limits.student_output_tok_s_min)


def connector(streams: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=streams + 8, limit_per_host=0)


def client_timeout(config: Config) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout)


class LoadEngine:
    """Runs load phases on this process's loop with one dispatcher; records go to a file and a hook."""

    def __init__(self, config: Config, session: aiohttp.ClientSession, share: loads.Share, origin_ns: int, *,
                 clock: Clock = perf_counter_ns, records: Path | None = None,
                 on_record: Callable[[RequestRecord], None] | None = None) -> None:
        self.config = config
        self.share = share
        self.live = Live()
        self.records = RecordsWriter(records, origin_ns) if records is not None else None
        self.on_record = on_record
        self._agg = Aggregator(slo(config))
        self.dispatcher = Dispatcher(session, Endpoint.from_config(config), config.prompts, self.live, self._sink,
                                     request_id_header=config.request_id_header, clock=clock,
                                     worker=share.worker, workers=share.workers)

    def _sink(self, rec: RequestRecord) -> None:
        self._agg.add(rec)
        if self.records is not None:
            self.records.write(rec)
        if self.on_record is not None:
            self.on_record(rec)

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        c = self.config
        if self.records is not None and spec.origin_ns:
            self.records.origin_ns = spec.origin_ns
        # Reservoirs of different processes and steps draw different samples.
        self._agg = agg = Aggregator(slo(c), spec.seed + 7919 * self.share.worker)
        agg.window_start_ns = spec.phase.warm_end_ns
        d, phase, share = self.dispatcher, spec.phase, self.share
        lag: Reservoir | None = None
        if spec.kind == "classroom":
            cancelled = await loads.classroom(d, phase, students=spec.students, think_min=c.think_min,
                                              think_max=c.think_max, seed=spec.seed, drain_s=c.drain_timeout,
                                              share=share)
        elif spec.kind == "batch":
            assert c.requests is not None  # validated
            cancelled = await loads.batch(d, phase, c.requests, c.batch_concurrency, c.drain_timeout, share=share)
        else:
            assert c.rate is not None  # validated
            lag = Reservoir(100_000, spec.seed + share.worker)
            cancelled = await loads.rate(d, phase, rps=c.rate, poisson=c.poisson, cap=c.rate_concurrency,
                                         seed=spec.seed, drain_s=c.drain_timeout, dispatch_lag_ms=lag, share=share)
        return PhaseResult(agg, cancelled, lag)

    def close(self) -> str:
        """Close the records file; returns its warning, if any."""
        if self.records is None:
            return ""
        self.records.close()
        return self.records.warning


class LocalLoad:
    """The load in this process, on the caller's loop."""

    workers = 1

    def __init__(self, engine: LoadEngine) -> None:
        self.engine = engine

    def snapshot(self) -> LiveSnapshot:
        return self.engine.live.snapshot()

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        return await self.engine.run_phase(spec)

    async def close(self) -> tuple[list[HealthSeries], list[str]]:
        warning = self.engine.close()
        return [], [warning] if warning else []

    def abort(self) -> None:
        self.engine.close()


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """What a load process is given at its start."""

    config: Config
    share: loads.Share
    origin_ns: int
    records: Path | None


@dataclass(slots=True)
class _Proc:
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    latest: LiveSnapshot
    inbox: "asyncio.Queue[tuple[str, Any]]"
    records: Path | None


class PoolLoad:
    """The load spread over `workers` load processes."""

    def __init__(self, config: Config, workers: int, origin_ns: int, records_dir: Path | None) -> None:
        self.config = config
        self.workers = workers
        self.origin_ns = origin_ns
        self.records_dir = records_dir
        self.procs: list[_Proc] = []

    async def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        # The children need the settings, not the parent's prompt-reading and file state.
        config = replace(self.config, progress=False, quiet=True)
        for w in range(self.workers):
            parent, child = ctx.Pipe(duplex=True)
            records = None if self.records_dir is None else self.records_dir / f".records.{w}.jsonl"
            job = WorkerJob(config, loads.Share(w, self.workers), self.origin_ns, records)
            proc = ctx.Process(target=worker_main, args=(child, job), name=f"classroom-probe-load-{w}", daemon=True)
            proc.start()
            child.close()
            entry = _Proc(proc, parent, LiveSnapshot(), asyncio.Queue(), records)
            self.procs.append(entry)
            loop.add_reader(parent.fileno(), self._receive, w)
        try:
            for w in range(self.workers):
                await self._expect(w, "ready", START_TIMEOUT_S)
        except BaseException:
            self.abort()
            raise

    def _receive(self, w: int) -> None:
        p = self.procs[w]
        try:
            while p.conn.poll():
                kind, payload = p.conn.recv()
                if kind == "tick":
                    p.latest = payload
                else:
                    p.inbox.put_nowait((kind, payload))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(p.conn.fileno())
            p.inbox.put_nowait(("gone", None))

    async def _expect(self, w: int, kind: str, timeout: float | None = None) -> Any:
        p = self.procs[w]
        try:
            got, payload = await asyncio.wait_for(p.inbox.get(), timeout)
        except TimeoutError as exc:
            raise ProbeError(f"load process {w} did not answer within {timeout:g} s") from exc
        if got == kind:
            return payload
        if got == "error":
            raise ProbeError(f"load process {w} failed: {payload}")
        if got == "bad input":
            raise BadInput(*payload)
        code = p.process.exitcode
        raise ProbeError(f"load process {w} ended unexpectedly (exit code {code})")

    def snapshot(self) -> LiveSnapshot:
        total = LiveSnapshot()
        for p in self.procs:
            total = total + p.latest
        return total

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        for p in self.procs:
            p.conn.send(("phase", spec))
        results: list[PhaseResult] = [await self._expect(w, "phase_done") for w in range(self.workers)]
        merged = results[0]
        for r in results[1:]:
            merged.merge(r)
        merged.aggregator.window_start_ns = spec.phase.warm_end_ns
        return merged

    async def close(self) -> tuple[list[HealthSeries], list[str]]:
        parts: list[HealthSeries] = []
        warnings: list[str] = []
        for w, p in enumerate(self.procs):
            try:
                p.conn.send(("close", None))
                health, warning = await self._expect(w, "closed", self.config.drain_timeout + 30)
                parts.append(health)
                if warning:
                    warnings.append(f"load process {w}: {warning}")
            except (ProbeError, OSError) as exc:
                warnings.append(str(exc))
        self.terminate()
        return parts, warnings

    def terminate(self, wait_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        for p in self.procs:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(p.conn.fileno())
            p.process.join(wait_s)
            if p.process.is_alive():
                p.process.kill()
                p.process.join(5)
            p.conn.close()

    def abort(self) -> None:
        """Stop now (interrupted): closing the pipes ends each process's phase at once."""
        for p in self.procs:
            with contextlib.suppress(OSError):
                p.conn.close()
        for p in self.procs:
            p.process.join(2)
            if p.process.is_alive():
                p.process.kill()
                p.process.join(5)

    @property
    def record_parts(self) -> list[Path]:
        return [p.records for p in self.procs if p.records is not None]


Load = LocalLoad | PoolLoad


def worker_main(conn: Connection, job: WorkerJob) -> None:
    """A load process: serve phases until told to close or until the parent goes away."""
    # Ctrl-C reaches the whole process group; the parent decides, its load processes follow the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    factory, clock = stamping_loop()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(conn, job, clock))
    except BadInput as exc:
        with contextlib.suppress(OSError):
            conn.send(("bad input", (exc.field, exc.message)))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", "".join(traceback.format_exception_only(exc)).strip()))


async def _serve(conn: Connection, job: WorkerJob, clock: Clock) -> None:
    config, share = job.config, job.share
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    running: list[asyncio.Task[PhaseResult]] = []

    def receive() -> None:
        try:
            while conn.poll():
                inbox.put_nowait(conn.recv())
        except (EOFError, OSError):
            # The parent is gone (killed, interrupted): stop loading the server now, not at the phase's end.
            loop.remove_reader(conn.fileno())
            for task in running:
                task.cancel()
            inbox.put_nowait(("gone", None))

    loop.add_reader(conn.fileno(), receive)
    streams = max(1, share.part(config.max_streams))
    async with aiohttp.ClientSession(connector=connector(streams), timeout=client_timeout(config),
                                     read_bufsize=1 << 20) as session:
        engine = LoadEngine(config, session, share, job.origin_ns, clock=clock, records=job.records)
        health = HealthMonitor(selector_of(clock))
        stop = asyncio.Event()
        watch = asyncio.create_task(health.loop(stop))
        ticks = asyncio.create_task(_ticks(conn, engine, stop))
        conn.send(("ready", None))
        gone = False
        while not gone:
            kind, payload = await inbox.get()
            if kind != "phase":
                gone = kind == "gone"
                break
            running[:] = [asyncio.create_task(engine.run_phase(payload))]
            try:
                result = await running[0]
            except asyncio.CancelledError:
                gone = True
                break
            running.clear()
            conn.send(("tick", engine.live.snapshot()))
            conn.send(("phase_done", result))
        stop.set()
        await asyncio.gather(watch, ticks)
        warning = engine.close()
    if not gone:
        conn.send(("closed", (health.series, warning)))


async def _ticks(conn: Connection, engine: LoadEngine, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):  # a parent gone is handled by the pipe's reader
            conn.send(("tick", engine.live.snapshot()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)


def batch_stop_s(config: Config) -> float:
    return config.batch_time_limit or BATCH_TIME_CAP_S
