"""Runs on the box: starts the probe, kills the engine with SIGKILL once the probe's load has run 3 s, and
writes the killed PID and the box's uptime at the kill to a JSON file. Everything is timed on the box, because
commands sent into a container whose two cores the engine keeps busy can take tens of seconds to start.

Usage: python3 kill_under_load.py SERVICE STATUS_FILE KILL_FILE PROBE_COMMAND...
"""

import json
import os
import signal
import subprocess
import sys
import time

LOAD_S = 3.0
WAIT_S = 180


def main_pid(service: str) -> int:
    out = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", service],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def elapsed(status_file: str) -> float:
    try:
        with open(status_file, encoding="utf-8") as fh:
            return float(json.load(fh).get("elapsed_s") or 0)
    except (OSError, ValueError):
        return 0.0


def main() -> int:
    service, status_file, kill_file, *probe = sys.argv[1:]
    with open("/var/tmp/outage-run.out", "w", encoding="utf-8") as out:
        proc = subprocess.Popen(probe, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    result: dict[str, object] = {"killed": False}
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if elapsed(status_file) >= LOAD_S:
            pid = main_pid(service)
            with open("/proc/uptime", encoding="utf-8") as fh:
                uptime = float(fh.read().split()[0])
            os.kill(pid, signal.SIGKILL)
            result = {"killed": True, "pid": pid, "uptime_s": uptime}
            break
        time.sleep(0.5)
    else:
        result["why"] = "the probe ended first" if proc.poll() is not None else f"no load within {WAIT_S} s"
    with open(kill_file, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
