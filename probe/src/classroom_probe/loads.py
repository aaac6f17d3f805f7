"""Load shapes: who sends which request when. Every loop is bounded in count and in time.

A shape knows nothing of HTTP: it calls `sender.one(...)` and awaits it. With several load
processes, each runs the same shape on its `Share` (every N-th student, request or arrival), so
the schedule as a whole is the one a single process would follow; request indices stay global.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Protocol

from classroom_probe.stats import Reservoir

NS = 1_000_000_000
MAX_PER_STUDENT = 10_000_000


class Sender(Protocol):
    """Sends one request to completion (never raises except on cancellation)."""

    prompt_count: int

    def next_index(self) -> int:
        """A request index no other request of the run has (classroom requests are numbered as issued)."""
        ...

    async def one(self, index: int, student: int | None, measured: bool, prompt_index: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Share:
    """This process's part of the load: items i with i % workers == worker."""

    worker: int = 0
    workers: int = 1

    def owns(self, i: int) -> bool:
        return i % self.workers == self.worker

    def part(self, total: int) -> int:
        """This process's part of `total` slots (concurrency, caps), at least one where total allows."""
        return total // self.workers + (1 if self.worker < total % self.workers else 0)


@dataclass(frozen=True, slots=True)
class Phase:
    """The schedule of one load phase in perf_counter_ns: start, warm-up end, stop issuing."""

    start_ns: int
    warm_end_ns: int
    stop_ns: int

    @classmethod
    def starting(cls, start_ns: int, warmup_s: float, duration_s: float) -> "Phase":
        warm_end = start_ns + int(warmup_s * NS)
        return cls(start_ns, warm_end, warm_end + int(duration_s * NS))


async def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - perf_counter_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)


async def drain(tasks: set["asyncio.Task[Any]"], deadline_ns: int) -> int:
    """Wait for tasks until the deadline, then cancel the rest (their requests count as drain_timeout)."""
    if not tasks:
        return 0
    timeout = max(0.0, (deadline_ns - perf_counter_ns()) / NS)
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


async def classroom(d: Sender, phase: Phase, *, students: int, think_min: float, think_max: float, seed: int,
                    drain_s: float, share: Share = Share()) -> int:
    """N students, each a closed loop: ask, read the whole answer, think, ask again, until stop.

    Students start staggered over the first think interval so that the class does not hit the server
    in one burst at t=0. Returns the number of requests cancelled at the drain deadline."""

    async def student(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        await _sleep_until(phase.start_ns + int(rng.uniform(0, think_max) * NS))
        for _ in range(MAX_PER_STUDENT):
            now = perf_counter_ns()
            if now >= phase.stop_ns:
                return
            await d.one(d.next_index(), i, now >= phase.warm_end_ns, rng.randrange(d.prompt_count))
            think = rng.uniform(think_min, think_max)
            if perf_counter_ns() + think * NS >= phase.stop_ns:
                return
            await asyncio.sleep(think)

    tasks = {asyncio.create_task(student(i)) for i in range(students) if share.owns(i)}
    return await drain(tasks, phase.stop_ns + int(drain_s * NS))


async def batch(d: Sender, phase: Phase, requests: int, concurrency: int, drain_s: float, *,
                share: Share = Share()) -> int:
    """M requests at bounded concurrency; memory does not grow with M. Request i uses prompt i."""
    counter = iter(range(share.worker, requests, share.workers))
    slots = min(share.part(concurrency), len(range(share.worker, requests, share.workers)))

    async def worker(slot: int) -> None:
        for index in counter:
            now = perf_counter_ns()
            if now >= phase.stop_ns:
                return
            await d.one(index, slot, now >= phase.warm_end_ns, index)

    # A slot is a student of its own in the statistics: numbered globally across processes.
    tasks = {asyncio.create_task(worker(share.worker + share.workers * s)) for s in range(slots)}
    return await drain(tasks, phase.stop_ns + int(drain_s * NS))


async def rate(d: Sender, phase: Phase, *, rps: float, poisson: bool, cap: int, seed: int, drain_s: float,
               dispatch_lag_ms: Reservoir, share: Share = Share()) -> int:
    """Open loop: arrivals at a constant interval or as a Poisson process, whatever the server does.

    At most `cap` requests are in flight; an arrival that finds no free slot waits, and the wait is
    recorded as dispatch lag (the offered rate was then not delivered, which the report says)."""
    rng = random.Random(seed)
    slots = asyncio.Semaphore(max(1, share.part(cap)))
    tasks: set[asyncio.Task[Any]] = set()
    total = int(rps * (phase.stop_ns - phase.start_ns) / NS) + 1

    async def arrival(index: int, due_ns: int) -> None:
        async with slots:
            dispatch_lag_ms.add(max(0, perf_counter_ns() - due_ns) / 1e6)
            await d.one(index, None, due_ns >= phase.warm_end_ns, index)

    due = phase.start_ns
    for index in range(total):
        if due >= phase.stop_ns:
            break
        if share.owns(index):
            await _sleep_until(due)
            task = asyncio.create_task(arrival(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # Every process draws every gap, so all of them follow the one seeded schedule.
        gap = rng.expovariate(rps) if poisson else 1.0 / rps
        due += int(gap * NS)
    return await drain(set(tasks), phase.stop_ns + int(drain_s * NS))


def ramp_counts(start: int, step: int, maximum: int) -> list[int]:
    """Class sizes of a ramp: start, start + step, ... up to maximum (always included)."""
    counts = list(range(start, maximum + 1, step))
    if counts[-1] != maximum:
        counts.append(maximum)
    return counts


async def ramp(counts: list[int], run_step: Callable[[int, int], Awaitable[bool]]) -> int | None:
    """Run classroom steps of growing size until one misses the SLO; the largest passing size, if any.

    `run_step(step_number, students)` applies one step and says whether it met the SLO."""
    best: int | None = None
    for number, students in enumerate(counts, 1):
        if not await run_step(number, students):
            break
        best = students
    return best
