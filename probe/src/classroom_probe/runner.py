"""Run one probe: check the endpoint, start the watchers, apply the load, drain, judge, write reports.

Python API:
    from classroom_probe.config import Config
    from classroom_probe.runner import run
    result = run(Config(base_url="http://127.0.0.1:8000", model="m", max_tokens=64, mode="batch",
                        requests=100, concurrency=8, gpu="off", report_dir=None))
    result.verdict.status, result.exit_code, result.report["aggregates"]
"""

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns
from typing import IO

import aiohttp

from classroom_probe import loads
from classroom_probe.client import Endpoint, Live
from classroom_probe.clock import Clock, stamping_loop
from classroom_probe.config import Config
from classroom_probe.errors import BadInput
from classroom_probe.fdlimit import ensure_fd_limit
from classroom_probe.gate import Check, GateInputs, Verdict, evaluate
from classroom_probe.gpu import GpuSampler
from classroom_probe.health import HealthMonitor
from classroom_probe.metrics import Aggregator, Slo
from classroom_probe.modelcheck import check_model
from classroom_probe.records import RequestRecord
from classroom_probe.report_files import write_reports
from classroom_probe.report_json import build_report
from classroom_probe.server_metrics import MetricsScraper
from classroom_probe.stats import Reservoir

NS = 1_000_000_000
BATCH_TIME_CAP_S = 24 * 3600.0


@dataclass(slots=True)
class RampStep:
    students: int
    aggregator: Aggregator
    verdict: Verdict
    cancelled: int


@dataclass(slots=True)
class RunData:
    """Everything measured, handed to the report builders."""

    config: Config
    started_at: datetime
    finished_at: datetime
    origin_ns: int
    load_end_ns: int
    aggregator: Aggregator
    live: Live
    gpu: GpuSampler
    scraper: MetricsScraper
    health: HealthMonitor
    throughput: list[tuple[int, float, int, int, int]]
    served_models: list[str]
    cancelled_at_drain: int
    dispatch_lag_ms: Reservoir | None = None
    ramp_steps: list[RampStep] = field(default_factory=list)
    ramp_largest: int | None = None


@dataclass(slots=True)
class RunResult:
    config: Config
    verdict: Verdict
    report: dict[str, object]
    aggregator: Aggregator
    report_dir: Path | None

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def run(config: Config, on_record: Callable[[RequestRecord], None] | None = None) -> RunResult:
    """Run the probe to completion. Raises BadInput for invalid options or an unusable endpoint.

    `on_record` is called with every finished request (timestamps in perf_counter_ns, gaps included).
    Chunks are stamped with the poll time of the event loop (see clock.py)."""
    factory, clock = stamping_loop()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run_async(config, on_record, clock=clock))


class _Ticker:
    """1 Hz: throughput series and the live progress line."""

    def __init__(self, live: Live, show: bool, origin_ns: int) -> None:
        self.live = live
        self.show = show
        self.origin_ns = origin_ns
        self.series: list[tuple[int, float, int, int, int]] = []
        self._tty = sys.stderr.isatty()

    async def loop(self, stop: asyncio.Event, max_ticks: int = 7 * 24 * 3600) -> None:
        last_t, last_tok = perf_counter_ns(), self.live.tokens
        for _ in range(max_ticks):
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
                break
            except TimeoutError:
                pass
            now, tok = perf_counter_ns(), self.live.tokens
            rate = (tok - last_tok) / ((now - last_t) / NS)
            last_t, last_tok = now, tok
            lv = self.live
            self.series.append((now, round(rate, 2), lv.done, lv.failed, lv.inflight))
            if self.show:
                self._print(now, rate)
        if self.show and self._tty:
            sys.stderr.write("\n")

    def _print(self, now: int, rate: float) -> None:
        lv = self.live
        kinds = " ".join(f"{k}={v}" for k, v in sorted(lv.failures.items()))
        line = (f"[{(now - self.origin_ns) / NS:7.1f} s] done {lv.done} ok {lv.done - lv.failed} "
                f"failed {lv.failed}{' (' + kinds + ')' if kinds else ''} in-flight {lv.inflight} {rate:8.1f} tok/s")
        if self._tty:
            sys.stderr.write("\r" + line[:200].ljust(100))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _slo(config: Config) -> Slo:
    return Slo(config.thresholds.ttft_p95_ms_max, config.thresholds.student_output_tok_s_min)


def _step_verdict(config: Config, agg: Aggregator) -> Verdict:
    t = replace(config.thresholds, min_requests=1, gpu_util_mean_min_pct=None, gpu_util_balance_max_ratio=None,
                probe_loop_lag_p99_ms_max=None)
    return evaluate(t, _gate_inputs(agg, None, "", None))


def _gate_inputs(agg: Aggregator, gpu_means: dict[int, float] | None, gpu_reason: str,
                 lag_p99: float | None) -> GateInputs:
    ttft = agg.ttft.quantile(95)
    return GateInputs(
        successes=agg.ok,
        failures=sum(agg.failures.values()),
        ttft_p95_ms=None if ttft is None else ttft / 1e6,
        student_tok_s_p50=agg.student_rates().quantile(50),
        gpu_means=gpu_means,
        gpu_reason=gpu_reason,
        lag_p99_ms=lag_p99,
    )


async def run_async(config: Config, on_record: Callable[[RequestRecord], None] | None = None, *,
                    clock: Clock = perf_counter_ns) -> RunResult:
    config.validate()
    ensure_fd_limit(config.max_streams, {"classroom": "--students", "ramp": "--ramp-max"}.get(config.mode,
                                                                                          "--concurrency"))
    records_fh: IO[str] | None = None
    if config.report_dir is not None:
        try:
            config.report_dir.mkdir(parents=True, exist_ok=True)
            if config.records:
                records_fh = (config.report_dir / "records.jsonl").open("w", encoding="utf-8")
        except OSError as exc:
            raise BadInput("--report-dir", f"cannot write {config.report_dir}: {exc.strerror}") from exc
    try:
        data = await _measure(config, on_record, records_fh, clock)
    finally:
        if records_fh is not None:
            records_fh.close()
    verdict = _judge(data)
    report = build_report(data, verdict)
    if config.report_dir is not None:
        write_reports(config.report_dir, report)
    return RunResult(config, verdict, report, data.aggregator, config.report_dir)


def _judge(data: RunData) -> Verdict:
    config = data.config
    window_start = data.aggregator.window_start_ns
    window_end = data.aggregator.window_end_ns or data.load_end_ns
    gpu_means = None if config.gpu == "off" else data.gpu.series.means(window_start, window_end)
    lag = data.health.series.lag_ms.quantile(99)
    extra: list[Check] = []
    if data.ramp_largest is not None or config.mode == "ramp":
        largest = data.ramp_largest or 0
        extra.append(Check("ramp_largest_passing_students", largest, config.ramp_start, largest >= config.ramp_start,
                           f"largest student count meeting the SLO, steps of {config.ramp_step} up to "
                           f"{config.ramp_max}"))
    return evaluate(config.thresholds, _gate_inputs(data.aggregator, gpu_means, data.gpu.series.reason, lag), extra)


async def _measure(config: Config, on_record: Callable[[RequestRecord], None] | None,
                   records_fh: IO[str] | None, clock: Clock) -> RunData:
    started_at = datetime.now(UTC)
    endpoint = Endpoint.from_config(config)
    aux_headers = {k: v for k, v in endpoint.headers.items() if k != "Content-Type"}
    origin_ns = perf_counter_ns()
    holder: list[Aggregator] = [Aggregator(_slo(config), config.seed)]

    def sink(rec: RequestRecord) -> None:
        holder[0].add(rec)
        if records_fh is not None:
            records_fh.write(json.dumps(rec.to_json(origin_ns)) + "\n")
        if on_record is not None:
            on_record(rec)

    connector = aiohttp.TCPConnector(limit=config.max_streams + 8, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, read_bufsize=1 << 20) as session:
        served = await check_model(session, config, aux_headers)
        live = Live()
        gpu = GpuSampler(config.gpu)
        await gpu.open()
        scraper = MetricsScraper(session, config.resolved_metrics_url, aux_headers)
        await scraper.baseline()
        health = HealthMonitor()
        origin_ns = perf_counter_ns()
        ticker = _Ticker(live, config.progress and not config.quiet, origin_ns)
        stop = asyncio.Event()
        watchers = [asyncio.create_task(c) for c in
                    (gpu.loop(stop), scraper.loop(stop), health.loop(stop), ticker.loop(stop))]
        d = loads.Dispatcher(session, endpoint, config.prompts, live, sink,
                             request_id_header=config.request_id_header, clock=clock)
        data = RunData(config, started_at, started_at, origin_ns, origin_ns, holder[0], live, gpu, scraper, health,
                       ticker.series, served, 0)
        try:
            await _load(config, d, holder, data)
        finally:
            data.load_end_ns = perf_counter_ns()
            stop.set()
            await asyncio.gather(*watchers, return_exceptions=True)
            gpu.close()
        await scraper.final()
    data.throughput = ticker.series
    data.finished_at = datetime.now(UTC)
    return data


def _phase(start_ns: int, warmup: float, duration: float) -> loads.Phase:
    warm_end = start_ns + int(warmup * NS)
    return loads.Phase(start_ns, warm_end, warm_end + int(duration * NS))


async def _load(config: Config, d: loads.Dispatcher, holder: list[Aggregator], data: RunData) -> None:
    start = perf_counter_ns()
    agg = holder[0]
    if config.mode == "classroom":
        phase = _phase(start, config.warmup, config.duration)
        agg.window_start_ns = phase.warm_end_ns
        data.cancelled_at_drain = await loads.classroom(
            d, phase, students=config.students, think_min=config.think_min, think_max=config.think_max,
            seed=config.seed, drain_s=config.drain_timeout)
    elif config.mode == "batch":
        assert config.requests is not None  # validated
        phase = _phase(start, config.warmup, config.batch_time_limit or BATCH_TIME_CAP_S)
        agg.window_start_ns = phase.warm_end_ns
        data.cancelled_at_drain = await loads.batch(d, phase, config.requests, config.batch_concurrency,
                                                    config.drain_timeout)
    elif config.mode == "rate":
        assert config.rate is not None  # validated
        phase = _phase(start, config.warmup, config.duration)
        agg.window_start_ns = phase.warm_end_ns
        data.dispatch_lag_ms = Reservoir(100_000, config.seed)
        data.cancelled_at_drain = await loads.rate(
            d, phase, rps=config.rate, poisson=config.poisson, cap=config.rate_concurrency, seed=config.seed,
            drain_s=config.drain_timeout, dispatch_lag_ms=data.dispatch_lag_ms)
    else:
        await _ramp(config, d, holder, data)


def ramp_counts(start: int, step: int, maximum: int) -> list[int]:
    counts = list(range(start, maximum + 1, step))
    if counts[-1] != maximum:
        counts.append(maximum)
    return counts


async def _ramp(config: Config, d: loads.Dispatcher, holder: list[Aggregator], data: RunData) -> None:
    """Raise the class size step by step until a step misses the SLO; keep the largest passing step."""
    best: RampStep | None = None
    for n in ramp_counts(config.ramp_start, config.ramp_step, config.ramp_max):
        agg = Aggregator(_slo(config), config.seed + n)
        holder[0] = agg
        phase = _phase(perf_counter_ns(), config.warmup, config.ramp_step_duration)
        agg.window_start_ns = phase.warm_end_ns
        cancelled = await loads.classroom(d, phase, students=n, think_min=config.think_min,
                                          think_max=config.think_max, seed=config.seed + n,
                                          drain_s=config.drain_timeout)
        step = RampStep(n, agg, _step_verdict(config, agg), cancelled)
        data.ramp_steps.append(step)
        data.cancelled_at_drain += cancelled
        if step.verdict.status != "pass":
            break
        best = step
    chosen = best or data.ramp_steps[0]
    data.aggregator = chosen.aggregator
    data.ramp_largest = best.students if best else 0
