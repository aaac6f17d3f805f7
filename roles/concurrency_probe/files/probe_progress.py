#!/usr/bin/env python3
"""Waits for the next progress report of a probe run and prints it as one JSON line.

    probe_progress.py STATUS_FILE JOB_FILE WAIT_S

STATUS_FILE is the probe's --status-file (JSON, replaced whole once a second). JOB_FILE is the results
file of the background job that runs the probe (`results_file` of an Ansible task started with async):
it holds "started" while the job runs and the job's result once it has ended. The concurrency_probe
role runs this once per poll, with the probe's own Python, and prints the report's `message`.

It returns after WAIT_S seconds with the newest report, or as soon as the run is over: the probe said
`finished` or `failed`, or the job ended without saying either (bad input found before the first
report, a crash, a kill), which it reports as state `exited`. It never fails: what it cannot read
becomes the message, so the caller's loop always ends cleanly and the job's exit code is judged after.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TypeGuard

FINAL_STATES = ("finished", "failed")
CHECK_EVERY_S = 0.5
# After its final report the probe prints its verdict line and exits: the caller collects the job next,
# so wait that moment out here rather than make the caller retry.
EXIT_GRACE_S = 10.0
USAGE = "usage: probe_progress.py STATUS_FILE JOB_FILE WAIT_S"


def read_object(path: Path) -> dict[str, object] | None:
    """The JSON object in `path`, or None when there is none (yet)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def job_running(job_file: Path) -> bool:
    """Whether the background job still runs. Its file exists from before the job starts; a missing file
    means it was collected and removed, so the job is over."""
    if not job_file.exists():
        return False
    doc = read_object(job_file)
    if doc is None:
        return True  # written by renaming a whole file over it: unreadable only for an instant
    return "started" in doc and not doc.get("finished")


def is_final(doc: dict[str, object] | None) -> TypeGuard[dict[str, object]]:
    return doc is not None and doc.get("state") in FINAL_STATES


def wait_for_exit(job_file: Path, grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    while job_running(job_file) and time.monotonic() < deadline:
        time.sleep(CHECK_EVERY_S / 5)


def wait_for_report(status_file: Path, job_file: Path, wait_s: float) -> dict[str, object]:
    deadline = time.monotonic() + wait_s
    while True:
        doc = read_object(status_file)
        if is_final(doc):
            wait_for_exit(job_file, EXIT_GRACE_S)
            return doc
        if not job_running(job_file):
            # The probe may have written its last report just before it ended.
            doc = read_object(status_file)
            if is_final(doc):
                return doc
            return {"state": "exited", "phase": "exited",
                    "message": "the probe ended without a final progress report (its exit code follows)"}
        if time.monotonic() >= deadline:
            return doc if doc is not None else {"state": "starting", "phase": "starting",
                                                "message": "starting the probe"}
        time.sleep(CHECK_EVERY_S)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(json.dumps({"state": "unknown", "message": USAGE}))
        return 0
    try:
        wait_s = max(0.0, float(argv[3]))
    except ValueError:
        print(json.dumps({"state": "unknown", "message": f"WAIT_S must be a number of seconds, got {argv[3]!r}"}))
        return 0
    print(json.dumps(wait_for_report(Path(argv[1]), Path(argv[2]), wait_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
