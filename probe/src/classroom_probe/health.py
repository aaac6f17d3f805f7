"""The probe watching itself: how long ready work waited for its event loop, and its CPU time.

On the probe's own loop (`run()`), the lag comes from the loop's polls (clock.py): no timer, no
wake-up of its own. On a caller's loop (`run_async`) a light ticker (every 50 ms) measures how
late it runs instead. Once a second the monitor records the longest wait of that second and the
CPU time the process used. Several load processes' records merge into one (`merge_health`).
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from classroom_probe.clock import LagHistogram, StampingSelector
from classroom_probe.stats import Reservoir

TICK_S = 0.050
NS = 1_000_000_000


@dataclass(slots=True)
class WorkerHealth:
    worker: int
    lag_p99_ms: float | None
    lag_max_ms: float
    cpu_s: float


@dataclass(slots=True)
class HealthSeries:
    source: str = "loop polls"  # or "ticker"
    lag: LagHistogram = field(default_factory=LagHistogram)
    ticks_ms: Reservoir | None = None  # ticker lateness samples (ticker source only)
    # Per second: (t_ns, longest wait in that second in ms, CPU percent of one core)
    per_second: list[tuple[int, float, float]] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    workers: list[WorkerHealth] = field(default_factory=list)

    def lag_ms(self, pct: float) -> float | None:
        if self.ticks_ms is not None:
            q = self.ticks_ms.quantile(pct)
            return None if q is None else round(q, 3)
        return self.lag.quantile_ms(pct)

    @property
    def lag_max_ms(self) -> float:
        if self.ticks_ms is not None:
            return round(self.ticks_ms.max, 3) if self.ticks_ms.count else 0.0
        return round(self.lag.max_ns / 1e6, 3)

    def gate_lag_p99_ms(self) -> float | None:
        """What the gate judges: the worst load process's p99 (every process must keep up)."""
        per = [w.lag_p99_ms for w in self.workers if w.lag_p99_ms is not None]
        return max(per) if per else self.lag_ms(99)


class HealthMonitor:
    """Records the loop's lag and the process's CPU time until stopped; `series` holds the result."""

    def __init__(self, selector: StampingSelector | None = None, interval: float = 1.0,
                 max_seconds: int = 7 * 24 * 3600) -> None:
        self.series = HealthSeries("loop polls" if selector is not None else "ticker")
        self.interval = interval
        self.max_seconds = max_seconds
        self._selector = selector
        self._second_max_ns = 0
        self._expected = 0
        self._ticker_on = True

    async def loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start_wall, start_cpu = time.perf_counter_ns(), time.process_time()
        handle: asyncio.TimerHandle | None = None
        if self._selector is not None:
            self._selector.reset_lag()
        else:
            self.series.ticks_ms = Reservoir(100_000, seed=7)
            self._expected = start_wall + int(TICK_S * NS)
            handle = loop.call_later(TICK_S, self._tick, loop)
        sec_wall, sec_cpu = start_wall, start_cpu
        try:
            for _ in range(self.max_seconds):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
                now, cpu = time.perf_counter_ns(), time.process_time()
                if now - sec_wall >= NS // 10:  # the last, partial second too, unless it is a sliver
                    cpu_pct = round(100 * (cpu - sec_cpu) / ((now - sec_wall) / NS), 1)
                    self.series.per_second.append((now, round(self._take_second_max() / 1e6, 3), cpu_pct))
                sec_wall, sec_cpu = now, cpu
                if stop.is_set():
                    break
        finally:
            if handle is not None:
                self._stop_ticker()
            if self._selector is not None:
                self.series.lag = self._selector.close_lag()
            self.series.cpu_s = time.process_time() - start_cpu
            self.series.wall_s = (time.perf_counter_ns() - start_wall) / NS

    def _take_second_max(self) -> int:
        if self._selector is not None:
            return self._selector.take_second_max()
        value, self._second_max_ns = self._second_max_ns, 0
        return value

    # The ticker, for loops the probe does not own: a callback rescheduled with call_later (no task step).
    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._ticker_on:
            return
        now = time.perf_counter_ns()
        late = max(0, now - self._expected)
        assert self.series.ticks_ms is not None
        self.series.ticks_ms.add(late / 1e6)
        self._second_max_ns = max(self._second_max_ns, late)
        self._expected = now + int(TICK_S * NS)
        loop.call_later(TICK_S, self._tick, loop)

    def _stop_ticker(self) -> None:
        self._ticker_on = False


def worker_health(worker: int, series: HealthSeries) -> WorkerHealth:
    return WorkerHealth(worker, series.lag_ms(99), series.lag_max_ms, round(series.cpu_s, 3))


def merge_health(parts: list[HealthSeries], origin_ns: int, parent_cpu_s: float = 0.0) -> HealthSeries:
    """One record of several load processes: lag histograms added, per-second series aligned on whole
    seconds since `origin_ns` (longest wait of any process, CPU summed), CPU time summed (the parent's
    included), per-process p99 kept for the gate."""
    merged = HealthSeries(parts[0].source if parts else "loop polls")
    seconds: dict[int, list[float]] = {}
    for w, part in enumerate(parts):
        merged.lag.merge(part.lag)
        merged.workers.append(worker_health(w, part))
        merged.cpu_s += part.cpu_s
        merged.wall_s = max(merged.wall_s, part.wall_s)
        for t, lag, cpu in part.per_second:
            slot = seconds.setdefault(round((t - origin_ns) / NS), [0.0, 0.0])
            slot[0] = max(slot[0], lag)
            slot[1] += cpu
    merged.cpu_s += parent_cpu_s
    merged.per_second = [(origin_ns + s * NS, round(v[0], 3), round(v[1], 1)) for s, v in sorted(seconds.items())]
    return merged
