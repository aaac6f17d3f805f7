"""Load models: who sends which request when. Every loop is bounded in count and in time."""

import asyncio
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import aiohttp

from classroom_probe.client import Endpoint, Live, send
from classroom_probe.clock import Clock
from classroom_probe.prompts import Prompt
from classroom_probe.records import RequestRecord
from classroom_probe.stats import Reservoir

NS = 1_000_000_000
MAX_PER_STUDENT = 10_000_000


class Dispatcher:
    """Sends one request and hands its record to the sink (statistics, records file, hooks)."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, prompts: list[Prompt], live: Live,
                 sink: Callable[[RequestRecord], None], *, request_id_header: str | None = None,
                 clock: Clock = perf_counter_ns) -> None:
        self.session = session
        self.endpoint = endpoint
        self.bodies = [endpoint.body(p) for p in prompts]  # serialised once, not per request
        self.live = live
        self.sink = sink
        self.request_id_header = request_id_header
        self.clock = clock
        self.issued = 0

    async def one(self, student: int | None, measured: bool, prompt_index: int) -> RequestRecord:
        rec = RequestRecord(self.issued, student, measured)
        self.issued += 1
        headers = None
        if self.request_id_header:
            # Lets a test server log its own times per request under the probe's index.
            headers = {**self.endpoint.headers, self.request_id_header: str(rec.index)}
        try:
            await send(self.session, self.endpoint, self.bodies[prompt_index % len(self.bodies)], rec, self.live,
                       headers=headers, clock=self.clock)
        finally:
            live = self.live
            live.done += 1
            key = rec.failure_key
            if key is not None:
                live.failed += 1
                live.failures[key] = live.failures.get(key, 0) + 1
            self.sink(rec)
        return rec


@dataclass(slots=True)
class Phase:
    """The schedule of one load phase in perf_counter_ns: start, warm-up end, stop issuing."""

    start_ns: int
    warm_end_ns: int
    stop_ns: int


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


async def classroom(d: Dispatcher, phase: Phase, *, students: int, think_min: float, think_max: float, seed: int,
                    drain_s: float) -> int:
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
            await d.one(i, now >= phase.warm_end_ns, rng.randrange(len(d.bodies)))
            think = rng.uniform(think_min, think_max)
            if perf_counter_ns() + think * NS >= phase.stop_ns:
                return
            await asyncio.sleep(think)

    tasks = {asyncio.create_task(student(i)) for i in range(students)}
    return await drain(tasks, phase.stop_ns + int(drain_s * NS))


async def batch(d: Dispatcher, phase: Phase, requests: int, concurrency: int, drain_s: float) -> int:
    """M requests at bounded concurrency; memory does not grow with M (records go to the sink)."""
    counter = iter(range(requests))

    async def worker(w: int) -> None:
        for index in counter:
            now = perf_counter_ns()
            if now >= phase.stop_ns:
                return
            await d.one(w, now >= phase.warm_end_ns, index)

    tasks = {asyncio.create_task(worker(w)) for w in range(min(concurrency, requests))}
    return await drain(tasks, phase.stop_ns + int(drain_s * NS))


async def rate(d: Dispatcher, phase: Phase, *, rps: float, poisson: bool, cap: int, seed: int, drain_s: float,
               dispatch_lag_ms: Reservoir) -> int:
    """Open loop: arrivals at a constant interval or as a Poisson process, whatever the server does.

    At most `cap` requests are in flight; an arrival that finds no free slot waits, and the wait is
    recorded as dispatch lag (the offered rate was then not delivered, which the report says)."""
    rng = random.Random(seed)
    slots = asyncio.Semaphore(cap)
    tasks: set[asyncio.Task[Any]] = set()
    total = int(rps * (phase.stop_ns - phase.start_ns) / NS) + 1

    async def arrival(index: int, due_ns: int) -> None:
        async with slots:
            dispatch_lag_ms.add(max(0, perf_counter_ns() - due_ns) / 1e6)
            await d.one(None, due_ns >= phase.warm_end_ns, index)

    due = phase.start_ns
    for index in range(total):
        if due >= phase.stop_ns:
            break
        await _sleep_until(due)
        task = asyncio.create_task(arrival(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        gap = rng.expovariate(rps) if poisson else 1.0 / rps
        due += int(gap * NS)
    return await drain(set(tasks), phase.stop_ns + int(drain_s * NS))


LoadCoro = Coroutine[Any, Any, int]
