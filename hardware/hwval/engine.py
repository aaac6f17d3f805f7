"""Starts vLLM from the role's rendered run.sh, waits for /health, kills a worker, stops it all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WORKER_MARK = "VLLM::Worker_TP"


@dataclass
class Engine:
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float  # time.monotonic()

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the leader's pid is the group id


def start(run_sh: Path, log_path: Path, env: dict[str, str]) -> Engine:
    """Run `sh run.sh` in a new session (setsid), output to a log, as the unit would exec it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["sh", str(run_sh)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, cwd=str(log_path.parent),
        )
    return Engine(proc, log_path, time.monotonic())


def health_code(base_url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of /health, or None when nothing answers (refused, reset, timeout)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/health", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def wait_healthy(engine: Engine, base_url: str, timeout: float, poll: float = 2.0) -> float:
    """Seconds from start to the first 200; raises RuntimeError on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health_code(base_url) == 200:
            return round(time.monotonic() - engine.started, 1)
        rc = engine.proc.poll()
        if rc is not None:
            raise RuntimeError(f"vLLM exited with code {rc} before it was healthy (log: {engine.log_path})")
        time.sleep(poll)
    raise RuntimeError(f"vLLM not healthy after {timeout:.0f} s (log: {engine.log_path})")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def session_members(sid: int) -> list[tuple[int, str]]:
    """Processes still in the engine's session (what a unit's cgroup would still hold)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state, ppid, pgrp, session; a zombie holds nothing any more
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != "Z":
            out.append((int(entry.name), _cmdline(entry.name)[:120]))
    return sorted(out)


def descendants(root: int) -> list[tuple[int, str]]:
    """Every process below `root` in the parent tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append((pid, _cmdline(str(pid))[:120]))
        todo.extend(children.get(pid, []))
    return sorted(out)


def engine_workers(engine: Engine) -> list[tuple[int, str]]:
    """This engine's tensor-parallel workers: titled VLLM::Worker_TP<rank> and started by this engine (its
    session or below it). Never other vLLM instances on the host (containers show their processes in /proc)."""
    mine = dict(session_members(engine.pgid)) | dict(descendants(engine.proc.pid))
    return sorted((pid, line) for pid, line in mine.items() if WORKER_MARK in line)


def stop(engine: Engine, grace: float = 20.0) -> int | None:
    """SIGTERM the whole session, then SIGKILL what is left; returns the API process's exit code."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(engine.pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and session_members(engine.pgid):
            engine.proc.poll()  # reaps the leader once it exits
            time.sleep(0.2)
        if not session_members(engine.pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        engine.proc.wait(timeout=5)
    return engine.proc.returncode
