"""The gateway scenario's stand-in counts every completion a stop costs (run here as a local process).

A request counts as lost with the box when it is being answered, or when its bytes already sit on one of the
box's connections: an idle keep-alive connection, or one the kernel accepted while the server was not looking.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-not-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def completion() -> bytes:
    body = json.dumps({"model": "classroom-tiny", "max_tokens": 2000, "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: box\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_stop_counts_answered_and_waiting_completions(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "molecule" / "concurrency_probe" / "files")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "molecule" / "gateway" / "files" / "standin_backend.py"), "--host", "127.0.0.1",
         "--port", str(port), "--api-key-file", str(tmp_path / "key"), "--inflight-file", str(tmp_path / "inflight")],
        env=env)
    conns: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conns.append(connect(port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the stand-in did not listen within 20 s"
                time.sleep(0.1)
        idle = conns[0]
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: box\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")  # answered; the connection stays open, idle
        for _ in range(3):  # being answered: each has its status line back, the stream goes on for seconds
            conn = connect(port)
            conn.sendall(completion())
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
            conns.append(conn)
        proc.send_signal(signal.SIGSTOP)  # nothing is read or accepted until the stop
        for _ in range(2):  # accepted by the kernel only
            conn = connect(port)
            conn.sendall(completion())
            conns.append(conn)
        health = connect(port)  # not a completion: not counted
        health.sendall(b"GET /health HTTP/1.1\r\nHost: box\r\n\r\n")
        conns.append(health)
        idle.sendall(completion())  # waiting on an open connection
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "inflight").read_text().strip() == "6", (tmp_path / "inflight.json").read_text()
    finally:
        for conn in conns:
            conn.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
