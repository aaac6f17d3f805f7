"""Runs one command the way a systemd unit runs ExecStart, and records what happened.

    python supervisor.py STATE_FILE LOG_FILE META_JSON -- COMMAND...

Started by `engine.launch` in a session of its own, so it outlives the Ansible task that started it.
The command gets a new session (the stand-in for the unit's cgroup: a stop signals the whole session);
each line it prints lands in LOG_FILE stamped `[+SECONDS s]` since launch; STATE_FILE (JSON, written
only by this process) gets the command's pid at once, then its exit code and exit time. META_JSON is
copied into the state. The command's environment is this process's: the caller builds it.
Run by path, so it imports nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


def stamp(seconds: float) -> bytes:
    return f"[+{seconds:8.2f}s] ".encode()


def write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def copy_lines(stream: IO[bytes], log: IO[bytes], t0: float) -> None:
    # Until every process holding the output has closed it: leftover workers keep writing after the
    # API process is gone, and what they print is part of the record.
    for raw in iter(stream.readline, b""):
        log.write(stamp(time.monotonic() - t0) + raw)
        log.flush()


def supervise(state_path: Path, log_path: Path, meta: dict[str, Any], command: list[str]) -> int:
    t0 = time.monotonic()
    state: dict[str, Any] = {**meta, "supervisor_pid": os.getpid(), "command": command,
                             "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "started_mono": t0,
                             "pid": None, "exit_code": None, "exited_mono": None, "error": ""}
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=str(log_path.parent))
        except OSError as exc:
            state.update(exit_code=127, exited_mono=time.monotonic(), error=f"{type(exc).__name__}: {exc}")
            write_state(state_path, state)
            return 1
        state["pid"] = proc.pid
        write_state(state_path, state)
        assert proc.stdout is not None
        reader = threading.Thread(target=copy_lines, args=(proc.stdout, log, t0), daemon=True)
        reader.start()
        code = proc.wait()
        state.update(exit_code=code, exited_mono=time.monotonic())
        write_state(state_path, state)
        reader.join()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return supervise(Path(argv[0]), Path(argv[1]), dict(json.loads(argv[2])), argv[4:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
