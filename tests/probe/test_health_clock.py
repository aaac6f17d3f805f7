"""The probe's self-watch and its arrival clock."""

import asyncio
import socket
import time

from classroom_probe.clock import stamping_loop
from classroom_probe.health import HealthMonitor


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def test_health_monitor_sees_a_blocked_loop() -> None:
    async def main() -> HealthMonitor:
        monitor = HealthMonitor()
        stop = asyncio.Event()
        task = asyncio.create_task(monitor.loop(stop))
        await asyncio.sleep(0.1)
        _busy(80)  # the loop is blocked: the next tick is about 80 ms late
        await asyncio.sleep(1.1)
        stop.set()
        await task
        return monitor

    series = asyncio.run(main()).series
    assert series.lag_ms.max >= 60
    assert series.lag_ms.count >= 40
    # The busy wait shows as CPU time (less than 80 ms where the shared machine descheduled us).
    assert series.per_second and series.cpu_s > 0.01


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
