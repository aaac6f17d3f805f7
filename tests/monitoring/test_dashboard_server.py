"""The dashboard server (roles/monitoring/files/classroom_dashboard.py) as its unit runs it: the key rule, the two
read-only Prometheus endpoints passed through and nothing else, the page's files and nothing outside them, the
security headers, and its refusals as one line each."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.monitoring import fake_prometheus
from tests.monitoring.conftest import FILES

KEY = "test-dashboard-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(rendered: Path, port: int, prometheus: str, listen: str = "127.0.0.1") -> list[str]:
    return [sys.executable, str(FILES / "classroom_dashboard.py"), "--listen", listen, "--port", str(port),
            "--prometheus", prometheus, "--static", str(FILES / "dashboard"),
            "--config", str(rendered / "dashboard.json"), "--grafana", str(rendered / "grafana-dashboard.json")]


@contextmanager
def dashboard(rendered: Path, prometheus: str, key: str = "") -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CLASSROOM_DASHBOARD_KEY"}
    if key:
        env["CLASSROOM_DASHBOARD_KEY"] = key
    proc = subprocess.Popen(command(rendered, port, prometheus), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err


def get(url: str, auth: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def basic(password: str, user: str = "teacher") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def prometheus() -> Iterator[tuple[str, fake_prometheus.Seen]]:
    with fake_prometheus.serve() as pair:
        yield pair


def test_the_key_rule(rendered: Path, prometheus: tuple[str, fake_prometheus.Seen]) -> None:
    with dashboard(rendered, prometheus[0], key=KEY) as base:
        status, headers, _ = get(base + "/")
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="classroom dashboard"')
        for wrong in (basic("nope"), "Bearer nope", "Basic !!!", basic(KEY + "x"), "Digest " + KEY):
            assert get(base + "/", wrong)[0] == 401, wrong
        assert get(base + "/api/v1/query?query=up")[0] == 401
        for good in (basic(KEY), basic(KEY, user=""), f"Bearer {KEY}"):
            assert get(base + "/", good)[0] == 200, good
        # The health check answers without the key and says nothing else.
        assert get(base + "/healthz") == (200, get(base + "/healthz")[1], b"ok\n")


def test_only_the_read_only_endpoints_reach_prometheus(rendered: Path,
                                                       prometheus: tuple[str, fake_prometheus.Seen]) -> None:
    url, seen = prometheus
    with dashboard(rendered, url) as base:
        seen.requests.clear()
        status, headers, body = get(base + "/api/v1/query_range?query=up&start=1&end=60&step=15&extra=drop")
        assert status == 200 and b'"matrix"' in body and headers["Cache-Control"] == "no-store"
        path, params, upstream_headers = seen.requests[-1]
        assert path == "/api/v1/query_range" and set(params) == {"query", "start", "end", "step"}
        assert "Authorization" not in upstream_headers
        # Prometheus' own error (a bad query) is passed on with its status and JSON.
        status, _, body = get(base + "/api/v1/query_range?query=syntax+error&start=1&end=2&step=1")
        assert status == 400 and b"parse error" in body
        for path in ("/api/v1/admin/tsdb/delete_series?match[]=up", "/api/v1/series?match[]=up", "/-/reload",
                     "/api/v1/status/config", "/federate"):
            assert get(base + path)[0] == 404, path
        for method in ("POST", "PUT", "DELETE"):
            assert get(base + "/api/v1/query?query=up", method=method)[0] == 405
        assert get(base + "/api/v1/query?query=" + "x" * 9000)[0] == 414
        assert len(seen.requests) == 2, "nothing but the two queries may reach Prometheus"


def test_the_page_its_files_and_nothing_else(rendered: Path, prometheus: tuple[str, fake_prometheus.Seen]) -> None:
    with dashboard(rendered, prometheus[0]) as base:
        status, headers, body = get(base + "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"dashboard.js" in body
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        for name in ("dashboard.js", "dashboard.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
            status, headers, body = get(f"{base}/{name}")
            assert status == 200 and body == (FILES / "dashboard" / name).read_bytes(), name
        assert headers["Content-Type"] == "text/css; charset=utf-8"
        status, headers, body = get(base + "/config.json")
        assert status == 200 and body == (rendered / "dashboard.json").read_bytes()
        status, headers, body = get(base + "/grafana-dashboard.json")
        assert status == 200 and "attachment" in headers["Content-Disposition"]
        for path in ("/../classroom_dashboard.py", "/%2e%2e/classroom_dashboard.py",
                     "/vendor/../../classroom_verdicts.py", "/etc/passwd", "//etc/passwd", "/dashboard.js/"):
            assert get(base + path)[0] == 404, path


def test_prometheus_down_is_a_json_error(rendered: Path) -> None:
    with dashboard(rendered, f"http://127.0.0.1:{free_port()}") as base:
        status, _, body = get(base + "/api/v1/query?query=up")
        assert status == 502 and b'"status": "error"' in body and b"did not answer" in body


@pytest.mark.parametrize(("extra", "listen", "words"), [
    ([], "0.0.0.0", "refusing to serve 0.0.0.0 without a key"),
    (["--port", "70000"], "127.0.0.1", "port 70000 is outside 1-65535"),
    (["--prometheus", "file:///etc"], "127.0.0.1", "--prometheus must be an http(s) URL"),
    (["--static", "/nonexistent"], "127.0.0.1", "no index.html in /nonexistent"),
])
def test_refusals_are_one_line(rendered: Path, extra: list[str], listen: str, words: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLASSROOM_DASHBOARD_KEY"}
    proc = subprocess.run(command(rendered, free_port(), "http://127.0.0.1:9", listen) + extra, env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_taken_port_is_one_line(rendered: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(command(rendered, port, "http://127.0.0.1:9"), capture_output=True, text=True,
                              timeout=30, check=False)
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr, proc.stderr
