"""When did a network read arrive? The time the event loop's poll returned, not when our task ran.

With many streams, a task that reads a chunk resumes after every callback and task queued ahead of
it in that loop iteration; stamping `perf_counter_ns()` at resume adds that queueing to TTFT and
ITL. The loop polls once per iteration, before running what is ready, and a task woken by data fed
in one iteration runs in a later one; so the poll time of the iteration in which the task resumes
is never earlier than the data's arrival, and it excludes the queue in front of the task.
"""

import asyncio
import selectors
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

Clock = Callable[[], int]


class StampingSelector(selectors.DefaultSelector):
    """The platform's default selector, remembering when its last `select()` returned."""

    def __init__(self) -> None:
        super().__init__()
        self.last_poll_ns = perf_counter_ns()

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(timeout)
        self.last_poll_ns = perf_counter_ns()
        return ready

    def stamp(self) -> int:
        return self.last_poll_ns


def stamping_loop() -> tuple[Callable[[], asyncio.AbstractEventLoop], Clock]:
    """A loop factory for `asyncio.Runner` and the clock that reads its poll times."""
    selector = StampingSelector()

    def factory() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(selector)

    return factory, selector.stamp
