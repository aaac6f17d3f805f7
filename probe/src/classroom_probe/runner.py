"""Run one probe: check inputs and outputs, check the endpoint, start the watchers, apply the load (in
this process or in load processes), drain, judge, write the reports.

Python API:
    from classroom_probe.config import Config
    from classroom_probe.runner import run
    result = run(Config(base_url="http://127.0.0.1:8000", model="m", max_tokens=64, mode="batch",
                        requests=100, concurrency=8, gpu="off", report_dir=None))
    result.verdict.status, result.exit_code, result.report["aggregates"]
"""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns, process_time
from typing import Any

import aiohttp

from classroom_probe import loads
from classroom_probe.clock import Clock, selector_of, stamping_loop
from classroom_probe.config import Config
from classroom_probe.errors import BadInput, ProbeError
from classroom_probe.fdlimit import ensure_fd_limit
from classroom_probe.gate import Check, GateInputs, Verdict, evaluate, ramp_check
from classroom_probe.gpu import GpuSampler
from classroom_probe.health import HealthMonitor, HealthSeries, merge_health
from classroom_probe.metrics import Aggregator, Timeline
from classroom_probe.modelcheck import check_model, server_version
from classroom_probe.outputs import RECORDS, Written, check_outputs, join_records, write_reports
from classroom_probe.progress import PhaseInfo, Progress
from classroom_probe.records import RequestRecord, server_caused
from classroom_probe.render_text import checks_table
from classroom_probe.report import Measurements, RampStep, Report, build_report
from classroom_probe.server_metrics import MetricsScraper
from classroom_probe.workers import (
    Load,
    LoadEngine,
    LocalLoad,
    PhaseSpec,
    PoolLoad,
    batch_stop_s,
    choose_workers,
    client_timeout,
    connector,
    slo,
    usable_cpus,
)

NS = 1_000_000_000


@dataclass(slots=True)
class RunResult:
    config: Config
    verdict: Verdict
    report: Report
    aggregator: Aggregator
    report_dir: Path | None  # where the reports are (a fallback folder if the asked one failed)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def checks_table(self) -> str:
        return checks_table(self.report)


def run(config: Config, on_record: Callable[[RequestRecord], None] | None = None) -> RunResult:
    """Run the probe to completion. Raises BadInput for invalid settings, unwritable outputs or an
    unusable endpoint, and ProbeError when a load process dies.

    `on_record` is called on the event loop with every finished request (timestamps in
    perf_counter_ns, gaps included); it keeps the load in this process. Chunks are stamped with the
    poll time of the event loop (see clock.py)."""
    factory, clock = stamping_loop()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_stoppable(run_async(config, on_record, clock=clock)))


async def _stoppable(run_coro: Coroutine[Any, Any, RunResult]) -> RunResult:
    """SIGTERM (a timeout, a service stop) cancels the run as Ctrl-C does: the load stops, nothing lingers."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    handled = False
    if task is not None:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            handled = True
    try:
        return await run_coro
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


async def run_async(config: Config, on_record: Callable[[RequestRecord], None] | None = None, *,
                    clock: Clock = perf_counter_ns) -> RunResult:
    config.validate()
    ensure_fd_limit(config.max_streams, config.streams_option)
    check_outputs(config.report_dir, config.records, config.status_file)
    progress = Progress(config.progress and not config.quiet, config.status_file)
    progress.set_label("checking the server")
    try:
        m = await _measure(config, on_record, clock, progress)
    except BadInput as exc:
        progress.failed(2, f"bad input: {exc}")
        raise
    except ProbeError as exc:
        progress.failed(3, f"probe error: {exc}")
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        progress.failed(130, "interrupted: no verdict")
        raise
    verdict = judge(m)
    report = build_report(m, verdict)
    written = Written(None)
    if config.report_dir is not None:
        progress.set_label("writing reports")
        written = write_reports(config.report_dir, report)
        if written.warnings:
            report["warnings"] = [*report["warnings"], *written.warnings]
    if progress.warning:
        report["warnings"].append(progress.warning)
    progress.finish(verdict.status, verdict.exit_code, written.folder,
                    f"verdict: {verdict.status}" + (f"; reports in {written.folder}" if written.folder else ""))
    return RunResult(config, verdict, report, m.aggregator, written.folder, report["warnings"])


async def _measure(config: Config, on_record: Callable[[RequestRecord], None] | None, clock: Clock,
                   progress: Progress) -> Measurements:
    started_at = datetime.now(UTC)
    aux_headers = dict(config.headers)
    if config.api_key:
        aux_headers["Authorization"] = f"Bearer {config.api_key}"
    workers = choose_workers(config, usable_cpus(), on_record is not None)
    records_path = config.report_dir / RECORDS if config.records and config.report_dir is not None else None
    streams = config.max_streams if workers == 1 else 4
    async with aiohttp.ClientSession(connector=connector(streams), timeout=client_timeout(config),
                                     read_bufsize=1 << 20) as session:
        served = await check_model(session, config, aux_headers)
        version = await server_version(session, config, aux_headers)
        gpu = GpuSampler(config.gpu)
        await gpu.open()
        scraper = MetricsScraper(session, config.resolved_metrics_url, aux_headers)
        await scraper.baseline()
        load: Load
        if workers == 1:
            load = LocalLoad(LoadEngine(config, session, loads.Share(), perf_counter_ns(), clock=clock,
                                        records=records_path, on_record=on_record))
        else:
            load = PoolLoad(config, workers, perf_counter_ns(), config.report_dir if records_path else None)
            progress.set_label(f"starting {workers} load processes")
            await load.start()
        m = Measurements(config, started_at, started_at, 0, 0, Aggregator(slo(config)), load.snapshot(),
                         gpu.series, scraper.series, version, HealthSeries(), Timeline(), served, workers)
        await _watch_and_load(config, load, m, progress, watchers=[gpu.loop, scraper.loop],
                              monitor=HealthMonitor(selector_of(clock)) if workers == 1 else None)
        gpu.close()
        if isinstance(load, PoolLoad) and records_path is not None:
            warning = join_records(records_path, load.record_parts)
            if warning:
                m.warnings.append(warning)
        await scraper.final()
    m.finished_at = datetime.now(UTC)
    return m


async def _watch_and_load(config: Config, load: Load, m: Measurements, progress: Progress, *,
                          watchers: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]],
                          monitor: HealthMonitor | None) -> None:
    """Apply the load with the watchers running; stop them, close the load and keep what they saw."""
    progress.origin_ns = m.origin_ns = perf_counter_ns()
    cpu0 = process_time()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w(stop)) for w in watchers] + [asyncio.create_task(_tick(load, m, progress, stop))]
    if monitor is not None:
        tasks.append(asyncio.create_task(monitor.loop(stop)))
    parts: list[HealthSeries] = []
    completed = False
    try:
        await _drive(config, load, m, progress)
        completed = True
    finally:
        m.load_end_ns = perf_counter_ns()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if completed:
            progress.set_label("closing")
            parts, warnings = await load.close()
            m.warnings += warnings
        else:  # interrupted or failed: stop loading the server at once
            load.abort()
    m.totals = load.snapshot()
    m.health = monitor.series if monitor is not None else merge_health(parts, m.origin_ns, process_time() - cpu0)


async def _tick(load: Load, m: Measurements, progress: Progress, stop: asyncio.Event,
                max_ticks: int = 7 * 24 * 3600) -> None:
    """1 Hz, and once more at the end of the load: the throughput series and the progress line."""
    m.timeline.start(perf_counter_ns(), load.snapshot())
    for _ in range(max_ticks):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        now, snap = perf_counter_ns(), load.snapshot()
        progress.tick(now, snap, m.timeline.add(now, snap))
        if stop.is_set():
            break


async def _drive(config: Config, load: Load, m: Measurements, progress: Progress) -> None:
    seed = config.seed
    if config.mode == "ramp":
        await _ramp(config, load, m, progress)
        return
    start = perf_counter_ns()
    span = batch_stop_s(config) if config.mode == "batch" else config.load_duration
    phase = loads.Phase.starting(start, config.warmup, span)
    progress.set_phase(PhaseInfo(phase, drain_s=config.drain_timeout,
                                 requests=config.requests if config.mode == "batch" else None))
    m.warmups.append((phase.start_ns, phase.warm_end_ns))
    spec = PhaseSpec(config.mode, phase, students=config.students, seed=seed, origin_ns=m.origin_ns)
    result = await load.run_phase(spec)
    m.aggregator = result.aggregator
    m.cancelled_at_drain = result.cancelled
    m.dispatch_lag_ms = result.dispatch_lag_ms


async def _ramp(config: Config, load: Load, m: Measurements, progress: Progress) -> None:
    """Raise the class size step by step until a step misses the SLO; keep the largest passing step."""
    counts = loads.ramp_counts(config.ramp_start, config.ramp_step, config.ramp_max)
    per_step = config.warmup + config.ramp_step_duration

    async def step(number: int, students: int) -> bool:
        phase = loads.Phase.starting(perf_counter_ns(), config.warmup, config.ramp_step_duration)
        progress.set_phase(PhaseInfo(phase, number, len(counts), students, later_s=per_step * (len(counts) - number),
                                     drain_s=config.drain_timeout))
        m.warmups.append((phase.start_ns, phase.warm_end_ns))
        result = await load.run_phase(PhaseSpec("classroom", phase, students=students, seed=config.seed + students,
                                                origin_ns=m.origin_ns))
        verdict = step_verdict(config, result.aggregator)
        m.ramp_steps.append(RampStep(students, result.aggregator, verdict, result.cancelled, phase.start_ns,
                                     phase.warm_end_ns, perf_counter_ns()))
        m.cancelled_at_drain += result.cancelled
        return verdict.status == "pass"

    best = await loads.ramp(counts, step)
    chosen = next((s for s in m.ramp_steps if s.students == best), m.ramp_steps[0])
    m.aggregator = chosen.aggregator
    m.ramp_largest = best or 0


def step_verdict(config: Config, agg: Aggregator) -> Verdict:
    """A ramp step meets the SLO: no failure beyond the limit, TTFT and answer speed within theirs."""
    t = replace(config.limits, min_requests=1, gpu_util_mean_min_pct=None, gpu_util_balance_max_ratio=None,
                probe_loop_lag_p99_ms_max=None)
    return evaluate(t, gate_inputs(agg, None, "", None))


def gate_inputs(agg: Aggregator, gpu_means: dict[int, float] | None, gpu_reason: str,
                lag_p99: float | None) -> GateInputs:
    ttft = agg.ttft.quantile(95)
    return GateInputs(successes=agg.ok, failures=sum(agg.failures.values()),
                      ttft_p95_ms=None if ttft is None else ttft / 1e6,
                      student_tok_s_p50=agg.student_rates().quantile(50), gpu_means=gpu_means, gpu_reason=gpu_reason,
                      lag_p99_ms=lag_p99, server_failures=server_caused(dict(agg.failures)))


def judge(m: Measurements) -> Verdict:
    config = m.config
    agg = m.aggregator
    gpu_means = None if config.gpu == "off" else m.gpu.means(agg.window_start_ns, agg.window_end_ns or m.load_end_ns)
    extra: list[Check] = []
    if config.mode == "ramp":
        extra.append(ramp_check(m.ramp_largest, config.ramp_start, config.ramp_step, config.ramp_max))
    return evaluate(config.limits, gate_inputs(agg, gpu_means, m.gpu.reason, m.health.gate_lag_p99_ms()), extra)
