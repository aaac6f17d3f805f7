"""Load-average discipline for the benchmarks: start only on a quiet machine, redo a sweep that was disturbed.

Before every sweep the kernel's 1-minute load average is read. Above the limit the benchmark refuses
to start; between sweeps it first waits (bounded) for the average to settle, since the previous sweep's
own processes raised it. During a sweep the kernel's figure cannot tell the benchmark's own server and
client apart from anything else (at 256 streams they alone keep it near 1), so a watcher counts, every
half second, the tasks that are runnable or in uninterruptible sleep (what the load average counts) minus
those of this process and its descendants. A sweep is quiet when that count from other processes stayed under the
limit both as a 1-minute load average (the kernel's formula, started from the figure read before the
sweep) and as its mean over the sweep; otherwise the sweep is discarded and redone, at most `retries`
times. `--allow-busy` lifts the refusal and keeps the last attempt, flagged as busy.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
EXIT_BUSY = 4
WATCH_INTERVAL_S = 0.5
COOLDOWN_POLL_S = 5.0


class MachineBusy(Exception):
    """The machine is not quiet enough for figures worth keeping; the message says what to do."""


def loadavg() -> list[float]:
    """The kernel's 1-, 5- and 15-minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]]


def loadavg_1min() -> float:
    return loadavg()[0]


def _task_state(path: str) -> tuple[bytes, int] | None:
    """A task's state letter and its process's parent pid, from its stat file."""
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: the fields start after the last ")".
    fields = text[text.rfind(b")") + 2 :].split(b" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return fields[0], int(fields[1])


def _scan() -> tuple[dict[int, int], dict[int, int]]:
    """Per process: how many of its tasks are runnable or in uninterruptible sleep (what the load average
    counts), and its parent pid. One pass over /proc."""
    busy: dict[int, int] = {}
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            tids = os.listdir(f"/proc/{name}/task")
        except OSError:
            continue
        n = 0
        for tid in tids:
            got = _task_state(f"/proc/{name}/task/{tid}/stat")
            if got is None:
                continue
            state, ppid = got
            parent[pid] = ppid
            if state in (b"R", b"D"):
                n += 1
        busy[pid] = n
    return busy, parent


def _tree(root: int, parent: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    tree = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    return tree


def own_tree(root: int) -> set[int]:
    """`root` and every process descended from it."""
    return _tree(root, _scan()[1])


def others_busy_tasks(root: int) -> int:
    """Runnable or uninterruptible tasks that belong to neither this process nor its descendants."""
    busy, parent = _scan()
    ours = _tree(root, parent)
    return sum(n for pid, n in busy.items() if pid not in ours)


@dataclass(frozen=True)
class SweepLoad:
    """The machine's load around one sweep (what the results put beside each figure)."""

    before_1min: float  # the kernel's 1-minute load average just before the sweep
    max_1min: float  # the kernel's figure at its highest during the sweep (the benchmark's own tasks included)
    after_1min: float
    others_max_1min: float  # other processes' tasks as a 1-minute load average, highest during the sweep
    others_mean: float  # other processes' tasks, mean over the sweep
    samples: int
    quiet: bool
    attempt: int  # 0 for the first try


@dataclass
class LoadWatch:
    """Samples other processes' busy tasks and the kernel's load average until stopped (bounded by stop())."""

    start_1min: float
    interval_s: float = WATCH_INTERVAL_S
    root: int = field(default_factory=os.getpid)
    read_others: Callable[[int], int] = others_busy_tasks
    read_1min: Callable[[], float] = loadavg_1min
    ema: float = 0.0
    ema_max: float = 0.0
    kernel_max: float = 0.0
    total: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.ema = self.ema_max = self.kernel_max = self.start_1min

    def start(self) -> LoadWatch:
        self._thread = threading.Thread(target=self._run, name="load-watch", daemon=True)
        self._thread.start()
        return self

    def sample(self, dt_s: float) -> None:
        n = self.read_others(self.root)
        # The kernel's exponential average, per sample instead of per 5 s: same 1-minute time constant.
        decay = math.exp(-dt_s / 60.0)
        self.ema = self.ema * decay + n * (1.0 - decay)
        self.ema_max = max(self.ema_max, self.ema)
        self.kernel_max = max(self.kernel_max, self.read_1min())
        self.total += n
        self.samples += 1

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            self.sample(now - last)
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def result(self, limit: float, attempt: int) -> SweepLoad:
        mean = self.total / self.samples if self.samples else 0.0
        return SweepLoad(
            before_1min=round(self.start_1min, 2),
            max_1min=round(self.kernel_max, 2),
            after_1min=round(self.read_1min(), 2),
            others_max_1min=round(self.ema_max, 2),
            others_mean=round(mean, 2),
            samples=self.samples,
            quiet=self.ema_max < limit and mean < limit,
            attempt=attempt,
        )


@dataclass(frozen=True)
class Swept(Generic[T]):
    """A sweep's result with the load it ran under, and the loads of the attempts discarded before it."""

    value: T
    load: SweepLoad
    discarded: list[SweepLoad]


@dataclass
class LoadPolicy:
    """When a sweep may start, and when it must be redone."""

    max_load: float = 1.0
    allow_busy: bool = False
    retries: int = 2
    cooldown_s: float = 300.0
    wait_first: bool = False  # wait for the first sweep too, rather than refusing at once
    read_1min: Callable[[], float] = loadavg_1min
    read_others: Callable[[int], int] = others_busy_tasks
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))
    _started: bool = False

    def before_sweep(self, label: str) -> float:
        """The 1-minute load average just before a sweep; raises MachineBusy when it stays at the limit or above."""
        now = self.read_1min()
        if now < self.max_load or self.allow_busy:
            self._started = True
            return now
        if not self._started and not self.wait_first:
            raise MachineBusy(
                f"machine busy: the 1-minute load average is {now:.2f}, at or above the limit {self.max_load:.1f} "
                "(--max-load). Stop other work (test runs, containers, engines), wait until the load average "
                "falls, and start again; --allow-busy runs anyway, with every figure flagged as busy and not "
                "fit to commit."
            )
        # The previous sweep's (or benchmark's) own processes raised it; give them time to fade.
        self.log(f"{label}: waiting up to {self.cooldown_s:g} s for the load average ({now:.2f}) to fall")
        waited = 0.0
        while now >= self.max_load and waited < self.cooldown_s:
            self.sleep(COOLDOWN_POLL_S)
            waited += COOLDOWN_POLL_S
            now = self.read_1min()
        self._started = True
        if now >= self.max_load:
            raise MachineBusy(
                f"machine busy before {label}: the 1-minute load average is still {now:.2f} after "
                f"{self.cooldown_s:g} s (limit {self.max_load:.1f}, --max-load). Something else is running; stop it "
                "and start again (or raise --cooldown)."
            )
        return now

    def sweep(self, label: str, body: Callable[[], T]) -> Swept[T]:
        """Run `body` as one sweep under watch; redo it while other processes' load reached the limit."""
        discarded: list[SweepLoad] = []
        for attempt in range(self.retries + 1):
            before = self.before_sweep(label)
            watch = LoadWatch(before, read_others=self.read_others, read_1min=self.read_1min).start()
            try:
                value = body()
            finally:
                watch.stop()
            load = watch.result(self.max_load, attempt)
            if load.quiet:
                return Swept(value, load, discarded)
            self.log(
                f"{label}: other processes' load reached {max(load.others_max_1min, load.others_mean):.2f} "
                f"(limit {self.max_load:.1f}) during the sweep; "
                + ("discarding it" if attempt < self.retries else f"gave up after {attempt + 1} attempt(s)")
            )
            if attempt < self.retries:
                discarded.append(load)
        if self.allow_busy:
            return Swept(value, load, discarded)
        raise MachineBusy(
            f"machine busy during {label}: other processes' load reached the limit {self.max_load:.1f} in each of "
            f"{self.retries + 1} attempt(s) (--retries {self.retries}). Stop other work and start again."
        )


def add_policy_args(p: argparse.ArgumentParser, default_retries: int, smoke_retries: int) -> None:
    """The quiet-machine options every sweep-running benchmark takes; LoadPolicy.from_args reads them."""
    p.add_argument("--allow-busy", action="store_true",
                   help="run even when the load average is at the limit; keep the last attempt of a disturbed "
                        "sweep, flagged as busy (figures not fit to commit)")
    p.add_argument("--max-load", type=float, default=1.0,
                   help="the 1-minute load average under which the machine counts as quiet [default: 1.0]")
    p.add_argument("--retries", type=int,
                   help=f"redo a disturbed sweep at most this many times [default: {default_retries}; smoke "
                        f"{smoke_retries}]")
    p.add_argument("--cooldown", type=float, default=300.0,
                   help="seconds to wait between sweeps for the load average to fall under the limit [default: 300]")
    p.add_argument("--wait", action="store_true",
                   help="before the first sweep too, wait up to --cooldown seconds for the load average to fall, "
                        "rather than refusing at once (for a run straight after another benchmark)")


def policy_from_args(args: argparse.Namespace) -> LoadPolicy:
    return LoadPolicy(max_load=args.max_load, allow_busy=args.allow_busy, retries=args.retries,
                      cooldown_s=args.cooldown, wait_first=args.wait)  # fmt: skip
