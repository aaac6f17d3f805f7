"""The probe watching itself: event-loop lag from a 10 ms ticker, and CPU time per wall second."""

import asyncio
import time
from dataclasses import dataclass, field

from classroom_probe.stats import Reservoir

TICK_S = 0.010
TICK_NS = 10_000_000


@dataclass(slots=True)
class HealthSeries:
    lag_ms: Reservoir = field(default_factory=lambda: Reservoir(100_000, seed=7))
    # Per second: (t_ns, max lag ms in that second, probe CPU percent of one core)
    per_second: list[tuple[int, float, float]] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0


class HealthMonitor:
    """Ticks every 10 ms from a timer callback and records how late each tick ran.

    A callback rescheduled with `call_later` costs less CPU per tick than a coroutine awaiting
    `asyncio.sleep` (no future, no task step), and at 100 ticks a second the ticker is a visible part
    of the probe's own CPU time when few streams run."""

    def __init__(self, max_ticks: int = 7 * 24 * 360_000) -> None:
        self.series = HealthSeries()
        self.max_ticks = max_ticks
        self._ticks = 0
        self._expected = 0
        self._sec_wall = 0
        self._sec_cpu = 0.0
        self._sec_max = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def loop(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        start_wall, start_cpu = time.perf_counter_ns(), time.process_time()
        self._sec_wall, self._sec_cpu = start_wall, start_cpu
        self._expected = start_wall + TICK_NS
        self._handle = self._loop.call_later(TICK_S, self._tick)
        try:
            await stop.wait()
        finally:
            if self._handle is not None:
                self._handle.cancel()
            self.series.cpu_s = time.process_time() - start_cpu
            self.series.wall_s = (time.perf_counter_ns() - start_wall) / 1e9

    def _tick(self) -> None:
        now = time.perf_counter_ns()
        lag = max(0.0, (now - self._expected) / 1e6)
        self.series.lag_ms.add(lag)
        self._sec_max = max(self._sec_max, lag)
        self._expected = now + TICK_NS
        if now - self._sec_wall >= 1_000_000_000:
            c = time.process_time()
            cpu_pct = round(100 * (c - self._sec_cpu) / ((now - self._sec_wall) / 1e9), 1)
            self.series.per_second.append((now, round(self._sec_max, 3), cpu_pct))
            self._sec_wall, self._sec_cpu, self._sec_max = now, c, 0.0
        self._ticks += 1
        if self._ticks < self.max_ticks and self._loop is not None:
            self._handle = self._loop.call_later(TICK_S, self._tick)
