"""vLLM started from the role's rendered run.sh where systemd is absent, as the unit would start it.

`launch` starts supervisor.py detached; the supervisor runs `sh run.sh` in a session of its own and
records the engine's pid, exit code and output (see supervisor.py). Every later command finds the
engine through the supervisor's state file: its health, its tensor-parallel workers, its stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classroom_validation.results import read_object

WORKER_MARK = "VLLM::Worker_TP"
# Run by path in isolated mode (-I): it needs only the standard library, whatever the environment.
SUPERVISOR = Path(__file__).with_name("supervisor.py")
# systemd's PATH for services; everything else the engine sees comes from the rendered environment file.
UNIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class EngineState:
    """What the supervisor recorded about one engine start."""

    name: str
    log: Path
    supervisor_pid: int
    started_mono: float
    pid: int | None
    exit_code: int | None
    exited_mono: float | None
    tmpdir: str
    error: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineState:
        return cls(str(d.get("name", "")), Path(str(d.get("log", ""))), int(d.get("supervisor_pid") or 0),
                   float(d.get("started_mono") or 0.0), d.get("pid"), d.get("exit_code"), d.get("exited_mono"),
                   str(d.get("tmpdir", "")), str(d.get("error", "")))

    @property
    def running(self) -> bool:
        return self.pid is not None and self.exit_code is None


def state_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"engine-{name}.json"


def read_state(state_dir: Path, name: str) -> EngineState | None:
    doc = read_object(state_file(state_dir, name))
    return EngineState.from_dict(doc) if doc else None


def read_environment(path: Path) -> dict[str, str]:
    """The rendered environment file (KEY=value, shell-quoted, as `set -a; . FILE` reads it)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, raw = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            words = shlex.split(raw) if raw else [""]
            env[name] = words[0] if words else ""
    return env


def engine_env(tmpdir: Path | None, inherit: bool) -> dict[str, str]:
    """The environment run.sh starts from: systemd's minimal one, or this process's when asked."""
    env = dict(os.environ) if inherit else {"PATH": UNIT_PATH, "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the rendered environment decides which GPUs vLLM sees
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def launch(name: str, run_sh: Path, log: Path, state_dir: Path, *, env: dict[str, str], tmpdir: Path | None = None,
           wait: float = 15.0) -> EngineState:
    """Start `sh run.sh` under a detached supervisor; returns once the engine has a pid (or failed to start)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    path = state_file(state_dir, name)
    path.unlink(missing_ok=True)
    meta = json.dumps({"name": name, "log": str(log), "tmpdir": str(tmpdir or "")})
    with (state_dir / f"supervisor-{name}.log").open("ab") as out:
        subprocess.Popen([sys.executable, "-I", str(SUPERVISOR), str(path), str(log), meta, "--", "sh", str(run_sh)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = read_state(state_dir, name)
        if state is not None and (state.pid is not None or state.exit_code is not None):
            return state
        time.sleep(0.1)
    raise RuntimeError(f"the engine supervisor wrote no state within {wait:.0f} s ({state_dir}/supervisor-{name}.log)")


def health_code(base_url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of /health, or None when nothing answers (refused, reset, timeout)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/health", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def wait_healthy(state_dir: Path, name: str, base_url: str, timeout: float, poll: float = 1.0) -> float:
    """Seconds from launch to the first /health 200; RuntimeError when the engine exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(state_dir, name)
        if state is None:
            raise RuntimeError(f"no state for engine {name}")
        if health_code(base_url) == 200:
            return round(time.monotonic() - state.started_mono, 2)
        if state.exit_code is not None:
            why = f" ({state.error})" if state.error else ""
            raise RuntimeError(f"vLLM exited with code {state.exit_code} before it was healthy{why} (log: {state.log})")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"vLLM not healthy after {timeout:.0f} s (log: {state.log})")
        time.sleep(poll)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _stat_fields(pid: int) -> list[str]:
    """Fields after the command name of /proc/PID/stat: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def session_members(sid: int) -> list[tuple[int, str]]:
    """Live processes of the engine's session: what the unit's cgroup would still hold."""
    out = []
    for pid in _pids():
        fields = _stat_fields(pid)
        # A zombie holds nothing any more.
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z":
            out.append((pid, _cmdline(pid)[:120]))
    return sorted(out)


def descendants(root: int) -> list[tuple[int, str]]:
    """Every process below `root` in the parent tree (a worker that left the session is still the engine's)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append((pid, _cmdline(pid)[:120]))
        todo.extend(children.get(pid, []))
    return sorted(out)


def engine_workers(state: EngineState) -> list[tuple[int, str]]:
    """This engine's tensor-parallel workers (titled VLLM::Worker_TP<rank>), never another vLLM's on the host."""
    if state.pid is None:
        return []
    mine = dict(session_members(state.pid)) | dict(descendants(state.pid))
    return sorted((pid, line) for pid, line in mine.items() if WORKER_MARK in line)


def wait_exit(state_dir: Path, name: str, timeout: float) -> EngineState | None:
    """The engine's state once the supervisor has seen its API process exit (or at the timeout)."""
    deadline = time.monotonic() + timeout
    state = read_state(state_dir, name)
    while state is not None and state.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.1)
        state = read_state(state_dir, name)
    return state


def stop(state_dir: Path, name: str, grace: float = 20.0) -> EngineState | None:
    """SIGTERM the engine's session, SIGKILL what is left after `grace`; the final state (exit code) or None."""
    state = read_state(state_dir, name)
    if state is None or state.pid is None:
        return state
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and session_members(state.pid):
            time.sleep(0.2)
        if not session_members(state.pid):
            break
    return wait_exit(state_dir, name, 10.0)


def running_engines(state_dir: Path) -> list[str]:
    """Names of engines whose session still has live processes."""
    names = []
    for path in sorted(state_dir.glob("engine-*.json")):
        state = EngineState.from_dict(read_object(path))
        if state.pid is not None and session_members(state.pid):
            names.append(state.name)
    return names
