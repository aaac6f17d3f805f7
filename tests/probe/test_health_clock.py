"""The probe's self-watch and its arrival clock."""

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
from classroom_probe.clock import Clock, LagHistogram, selector_of, stamping_loop
from classroom_probe.health import HealthMonitor


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def _blocked_run(monitor_for: Callable[[Clock], HealthMonitor]) -> HealthMonitor:
    factory, clock = stamping_loop()

    async def main() -> HealthMonitor:
        monitor = monitor_for(clock)
        stop = asyncio.Event()
        task = asyncio.create_task(monitor.loop(stop))
        await asyncio.sleep(0.1)
        _busy(80)  # the loop is blocked: anything that becomes ready waits up to 80 ms
        await asyncio.sleep(1.1)
        stop.set()
        await task
        return monitor

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def test_loop_polls_see_a_blocked_loop() -> None:
    series = _blocked_run(lambda clock: HealthMonitor(selector_of(clock))).series
    assert series.source == "loop polls"
    assert series.lag_max_ms >= 60
    # 80 ms blocked in about 1.2 s: more than 1 % of the run's time waited over 30 ms.
    assert (series.lag_ms(99) or 0) >= 30
    assert series.lag_ms(50) == 0  # the loop idled most of the time
    assert series.per_second and max(lag for _, lag, _ in series.per_second) >= 60
    # The busy wait shows as CPU time (less than 80 ms where the shared machine descheduled us).
    assert series.cpu_s > 0.01


def test_ticker_on_a_loop_the_probe_does_not_own() -> None:
    series = _blocked_run(lambda _: HealthMonitor(None)).series
    assert series.source == "ticker" and series.ticks_ms is not None
    # A tick every 50 ms: the one due inside the 80 ms block runs at least 30 ms late.
    assert series.lag_max_ms >= 25 and series.ticks_ms.count >= 10


def test_loop_polls_cost_no_wake_up_of_their_own() -> None:
    # An idle loop watched for 1.5 s polls a few times (the 1 Hz sample), where a 10 ms ticker polls 150 times.
    factory, clock = stamping_loop()
    selector = selector_of(clock)
    assert selector is not None

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(HealthMonitor(selector).loop(stop))
        await asyncio.sleep(1.5)
        stop.set()
        await task

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert sum(selector.lag.counts) < 30


def test_lag_histogram_quantiles_and_merge() -> None:
    ms = 1_000_000
    h = LagHistogram()
    h.add(100 * ms)  # one 100 ms busy period ...
    for _ in range(1000):
        h.add(1000)  # ... and a thousand of 1 us
    h.wall_ns = 1000 * ms
    # P(lag > x) = (100 ms - x) / 1000 ms: 1 % at x = 90 ms; the loop idles most of the time: p50 = 0.
    assert h.quantile_ms(99) == pytest.approx(90, rel=0.07)
    assert h.quantile_ms(50) == 0
    assert h.max_ns == 100 * ms
    other = LagHistogram()
    other.wall_ns = 1000 * ms  # a second process that never blocked halves the share of time waiting
    other.merge(h)
    assert other.quantile_ms(99) == pytest.approx(80, rel=0.07)
    assert LagHistogram().quantile_ms(99) is None


def test_stamp_excludes_work_queued_ahead_of_the_reader() -> None:
    factory, clock = stamping_loop()
    r, w = socket.socketpair()
    r.setblocking(False)

    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        got: list[tuple[int, int]] = []

        async def reader() -> None:
            await loop.sock_recv(r, 16)
            got.append((clock(), time.perf_counter_ns()))

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.05)  # the reader now waits on the socket
        t_write = time.perf_counter_ns()
        w.send(b"x")
        # Runs in the iteration that reads the socket, and queues 40 ms of work ahead of the reader's wake-up.
        loop.call_soon(lambda: loop.call_soon(_busy, 40))
        await task
        (stamp, resumed) = got[0]
        return t_write, stamp, resumed

    with asyncio.Runner(loop_factory=factory) as runner:
        t_write, stamp, resumed = runner.run(main())
    r.close()
    w.close()
    assert stamp >= t_write  # never earlier than the data
    assert resumed - stamp >= 35_000_000  # the queued 40 ms are not charged to the read
    assert stamp - t_write < 30_000_000
