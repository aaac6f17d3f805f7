"""When did a network read arrive, and how long did ready work wait for the loop?

Arrival: with many streams, a task that reads a chunk resumes after every callback and task queued
ahead of it in that loop iteration; stamping `perf_counter_ns()` at resume adds that queueing to
TTFT and ITL. The loop polls once per iteration, before running what is ready, and a task woken by
data fed in one iteration runs in a later one; so the poll time of the iteration in which the task
resumes is never earlier than the data's arrival, and it excludes the queue in front of the task.

Loop lag, measured by the same poll: the time from one poll's return to the next poll is the loop's
busy period; anything that becomes ready inside it (a read, a timer) waits for the rest of it. So
the lag a moment of the run would see is the remainder of the busy period it falls in, and its
distribution over the run's time follows from the busy periods alone: P(lag > x) = sum over busy
periods B longer than x of (B - x), divided by the wall time. That costs two clock reads and a few
integer operations per loop iteration and no wake-up of its own, where a 10 ms ticker costs a
hundred wake-ups a second on an otherwise idle loop.
"""

import asyncio
import selectors
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

Clock = Callable[[], int]

# Busy periods are binned by their highest four bits: eight bins per doubling, about 6 % wide.
_SUB_BITS = 3
_BINS = 64 << _SUB_BITS


def _bin(ns: int) -> int:
    b = ns.bit_length()
    if b <= _SUB_BITS + 1:
        return b
    return (b << _SUB_BITS) | ((ns >> (b - _SUB_BITS - 1)) & ((1 << _SUB_BITS) - 1))


@dataclass(slots=True)
class LagHistogram:
    """Busy periods of an event loop (count and total per bin) and the wall time they fell in."""

    counts: list[int] = field(default_factory=lambda: [0] * _BINS)
    sums: list[int] = field(default_factory=lambda: [0] * _BINS)
    wall_ns: int = 0
    max_ns: int = 0

    def add(self, busy_ns: int) -> None:
        i = _bin(busy_ns)
        self.counts[i] += 1
        self.sums[i] += busy_ns
        self.max_ns = max(self.max_ns, busy_ns)

    def merge(self, other: "LagHistogram") -> None:
        for i, (c, s) in enumerate(zip(other.counts, other.sums, strict=True)):
            self.counts[i] += c
            self.sums[i] += s
        self.wall_ns += other.wall_ns
        self.max_ns = max(self.max_ns, other.max_ns)

    def _exceed_ns(self, x: float) -> float:
        """Sum over busy periods longer than x of (B - x); a bin's periods are taken at their mean."""
        total = 0.0
        for count, s in zip(self.counts, self.sums, strict=True):
            if count and s / count > x:
                total += s - x * count
        return total

    def quantile_ms(self, pct: float) -> float | None:
        """The lag that `pct` % of the run's time stayed under, in ms (0 when the loop idled enough)."""
        if self.wall_ns <= 0:
            return None
        budget = self.wall_ns * (1 - pct / 100.0)
        if self._exceed_ns(0.0) <= budget:
            return 0.0
        lo, hi = 0.0, float(self.max_ns)
        for _ in range(48):
            mid = (lo + hi) / 2
            if self._exceed_ns(mid) > budget:
                lo = mid
            else:
                hi = mid
        return round(hi / 1e6, 3)

    def busy_fraction(self) -> float | None:
        return None if self.wall_ns <= 0 else sum(self.sums) / self.wall_ns


class StampingSelector(selectors.DefaultSelector):
    """The platform's default selector, remembering when its last `select()` returned and timing the
    busy periods between polls (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_poll_ns = perf_counter_ns()
        self.lag = LagHistogram()
        self.second_max_ns = 0  # longest busy period since `take_second_max()` was last called
        self._started_ns = self.last_poll_ns

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        entered = perf_counter_ns()
        busy = entered - self.last_poll_ns
        # Inlined LagHistogram.add: this runs once per loop iteration.
        b = busy.bit_length()
        i = b if b <= _SUB_BITS + 1 else (b << _SUB_BITS) | ((busy >> (b - _SUB_BITS - 1)) & 7)
        lag = self.lag
        lag.counts[i] += 1
        lag.sums[i] += busy
        if busy > self.second_max_ns:  # noqa: PLR1730  (a call costs more than a branch, once per iteration)
            self.second_max_ns = busy
        ready: list[tuple[Any, int]] = super().select(timeout)
        self.last_poll_ns = perf_counter_ns()
        return ready

    def stamp(self) -> int:
        return self.last_poll_ns

    def reset_lag(self) -> None:
        """Start the lag record now (the load's start, not the process's)."""
        self.lag = LagHistogram()
        self._started_ns = perf_counter_ns()
        self.second_max_ns = 0

    def take_second_max(self) -> int:
        value, self.second_max_ns = self.second_max_ns, 0
        self.lag.max_ns = max(self.lag.max_ns, value)
        return value

    def close_lag(self) -> LagHistogram:
        """The lag record up to now (its wall time set)."""
        self.take_second_max()
        self.lag.wall_ns = perf_counter_ns() - self._started_ns
        return self.lag


def stamping_loop() -> tuple[Callable[[], asyncio.AbstractEventLoop], Clock]:
    """A loop factory for `asyncio.Runner` and the clock that reads its poll times.

    The clock is the selector's bound `stamp` method; `selector_of(clock)` gets the selector back."""
    selector = StampingSelector()

    def factory() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(selector)

    return factory, selector.stamp


def selector_of(clock: Clock) -> StampingSelector | None:
    owner = getattr(clock, "__self__", None)
    return owner if isinstance(owner, StampingSelector) else None
