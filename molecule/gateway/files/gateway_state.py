#!/usr/bin/env python3
"""What the running HAProxy says about each box, and how far a probe run has got (molecule only).

Prints one JSON object: `servers` maps each server of --backend to its live status (UP, DOWN, MAINT,
"UP 1/2" while a check is changing it) and its counters (COUNTERS), read from HAProxy's stats socket;
with --status-file also `probe`: the run's phase, elapsed_s and state from its status file, and the wall
time the file was written (status_mtime), which maps the run's own clock onto wall time.
A socket or file that cannot be read yet is reported as such (`error`), never as a crash: the scenario
polls this until the state it waits for appears.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
from pathlib import Path

# Open sessions, sessions so far, and what went wrong on the way to each server: connection and response
# errors, retries, redispatches, and transfers the client or the server aborted.
COUNTERS = ("scur", "stot", "econ", "eresp", "wretr", "wredis", "cli_abrt", "srv_abrt")


def servers(sock_path: str, backend: str) -> tuple[dict[str, dict[str, object]], str]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(sock_path)
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        return {}, f"stats socket {sock_path}: {exc}"
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}, f"stats socket {sock_path} answered {lines[:1]}"
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    return {
        row["svname"]: {"status": row["status"], **{k: int(row.get(k) or 0) for k in COUNTERS}}
        for row in rows
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    }, ""


def probe(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        mtime = os.stat(path).st_mtime
    except (OSError, ValueError) as exc:
        return {"error": f"{path}: {exc}", "phase": "", "elapsed_s": 0, "state": "", "status_mtime": 0}
    return {"phase": doc.get("phase", ""), "elapsed_s": doc.get("elapsed_s", 0), "state": doc.get("state", ""),
            "in_flight": doc.get("in_flight", 0), "status_mtime": mtime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", default="/run/haproxy/admin.sock")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--status-file", type=Path)
    args = parser.parse_args(argv)
    found, error = servers(args.socket, args.backend)
    out: dict[str, object] = {"servers": found, "error": error}
    if args.status_file is not None:
        out["probe"] = probe(args.status_file)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
