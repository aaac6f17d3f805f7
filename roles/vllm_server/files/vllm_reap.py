"""ExecStopPost of the vLLM unit: ends what is left of the unit's processes, then waits until they are gone.

When the API server dies (kill -9, the OOM killer), its engine and tensor-parallel workers are left in
the unit's cgroup. systemd SIGKILLs them, but where it gets no notice that the cgroup emptied (cgroup
v1, as in containers) it waits the whole TimeoutStopSec before the restart. This runs before that
wait: once the cgroup holds only this process, systemd restarts at once. On cgroup v2 the cgroup is
already empty here and the script does nothing. It never fails the unit: ExecStopPost is cleanup.

Runs with the system interpreter (not the service's venv, which an upgrade may be replacing).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

DEADLINE_S = 10.0
POLL_S = 0.05


def procs_file(cgroup_text: str, root: Path = Path("/sys/fs/cgroup")) -> Path | None:
    """The cgroup.procs file of this process's unit: the systemd v1 hierarchy first, then v2."""
    named: list[Path] = []
    unified: list[Path] = []
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers == "name=systemd":
            named.append(root / "systemd" / rel / "cgroup.procs")
        elif controllers == "":
            unified += [root / "unified" / rel / "cgroup.procs", root / rel / "cgroup.procs"]
    return next((p for p in named + unified if p.is_file()), None)


def others(procs: Path, me: int) -> list[int]:
    try:
        return [pid for pid in (int(x) for x in procs.read_text().split()) if pid != me]
    except (OSError, ValueError):
        return []


def reap(procs: Path, me: int, deadline_s: float = DEADLINE_S) -> list[int]:
    """SIGKILLs every other process of the cgroup until none is left; returns the ones left at the deadline."""
    end = time.monotonic() + deadline_s
    left = others(procs, me)
    while left and time.monotonic() < end:
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(POLL_S)
        left = others(procs, me)
    return left


def main() -> int:
    try:
        procs = procs_file(Path("/proc/self/cgroup").read_text())
    except OSError:
        return 0
    if procs is None:
        return 0
    left = reap(procs, os.getpid())
    if left:
        print(f"vllm_reap: processes still in the unit's cgroup after {DEADLINE_S:.0f} s: {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
