"""A stand-in for Prometheus' HTTP API (/api/v1/query and /api/v1/query_range) on loopback, for the dashboard's
tests: a box serving vLLM with no GPU. Range queries about GPUs are empty, the others get one series each; instant
queries answer the tiles. Every request is recorded, so a test can see what the dashboard server passed on."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)


def _instant(query: str, now: float) -> list[dict[str, Any]]:
    if query.startswith("classroom_check_status") and "gate" in query:
        return [{"metric": {"check": "gate", "status": "pass"}, "value": [now, "1"]}]
    if query.startswith("classroom_check_status") and "daily" in query:
        return [{"metric": {"check": "daily", "status": "fail"}, "value": [now, "1"]}]
    if query.startswith("classroom_check_timestamp_seconds"):
        return [{"metric": {}, "value": [now, str(now - 600)]}]
    if query.startswith("up"):
        return [{"metric": {"job": "vllm", "instance": "127.0.0.1:8000"}, "value": [now, "1"]}]
    if query.startswith("classroom_gpu_count"):
        return [{"metric": {}, "value": [now, "0"]}]
    if query.startswith("count(ALERTS"):
        return [{"metric": {}, "value": [now, "1"]}]
    if query.startswith("classroom_gpu_exporter_info"):
        return [{"metric": {"reason": "no_driver",
                            "detail": "the NVIDIA driver's NVML library (libnvidia-ml.so.1) is not installed"},
                 "value": [now, "1"]}]
    return []


def _range(query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    if "classroom_gpu" in query:
        return []
    points = [[t, str(round(5 + 4 * math.sin(t / 60), 3))] for t in _steps(start, end, step)]
    return [{"metric": {"job": "vllm", "model_name": "classroom-tiny"}, "values": points}]


def _steps(start: float, end: float, step: float) -> Iterator[float]:
    t = start
    while t <= end:
        yield t
        t += step


class _Handler(BaseHTTPRequestHandler):
    seen: Seen

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        self.seen.requests.append((url.path, params, dict(self.headers.items())))
        query = params.get("query", [""])[0]
        if url.path == "/api/v1/query":
            result = _instant(query, time.time())
            body: dict[str, Any] = {"status": "success", "data": {"resultType": "vector", "result": result}}
        elif url.path == "/api/v1/query_range":
            if "syntax error" in query:
                self._json(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
                return
            result = _range(query, float(params["start"][0]), float(params["end"][0]), float(params["step"][0]))
            body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        else:
            self._json(404, {"status": "error", "error": "not found"})
            return
        self._json(200, body)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
