#!/usr/bin/python3
"""The classroom's live dashboard: a static page whose charts read Prometheus' HTTP API through this server.

    classroom_dashboard.py --listen 127.0.0.1 --port 9190 --prometheus http://127.0.0.1:9090 \
        --static DIR --config dashboard.json [--grafana grafana-dashboard.json]

Serves the page and its files (the charting library among them: no network at run time), the panels' settings
(--config) and the Grafana dashboard, and passes two read-only Prometheus endpoints through (/api/v1/query and
/api/v1/query_range); Prometheus itself stays on loopback. With CLASSROOM_DASHBOARD_KEY in the environment every
request but /healthz needs the key: HTTP basic auth (any user name, the key as password) or Authorization: Bearer.
Without a key it serves loopback only. Standard library only; runs under the box's own python3.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import ipaddress
import json
import mimetypes
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import cast

KEY_ENV = "CLASSROOM_DASHBOARD_KEY"
PROXIED = {"/api/v1/query": ("query", "time", "timeout"),
           "/api/v1/query_range": ("query", "start", "end", "step", "timeout")}
MAX_QUERY_BYTES = 8192
UPSTREAM_TIMEOUT_S = 20.0
SECURITY_HEADERS = {
    # Everything the page loads comes from here; nothing inline, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Settings:
    prometheus: str
    static: dict[str, Path]
    config: Path
    grafana: Path | None
    key: str


def static_files(folder: Path) -> dict[str, Path]:
    """URL path -> file for every file under the folder, read once: nothing outside it can ever be named."""
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            out["/" + path.relative_to(folder).as_posix()] = path
    if "/index.html" in out:
        out["/"] = out["/index.html"]
    return out


def authorized(header: str | None, key: str) -> bool:
    """The key as a Bearer token or as the basic-auth password; compared in constant time."""
    if not key:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    return hmac.compare_digest(given.encode(), key.encode())


class Handler(BaseHTTPRequestHandler):
    server_version = "classroom-dashboard"
    sys_version = ""

    @property
    def settings(self) -> Settings:
        return cast("Server", self.server).settings

    def log_message(self, format: str, *args: object) -> None:
        pass  # a page refreshing every few seconds would flood the journal; errors are logged in _send

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        if status >= 400 and status != 401:
            sys.stderr.write(f"{self.address_string()} {self.command} {self.path.split('?')[0]} -> {status}\n")
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", extra)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self._text(200, "ok")
            return
        if not authorized(self.headers.get("Authorization"), self.settings.key):
            self._text(401, "The classroom dashboard needs its key (user name: anything; password: the key).",
                       {"WWW-Authenticate": 'Basic realm="classroom dashboard", charset="UTF-8"'})
            return
        if url.path in PROXIED:
            self._proxy(url.path, url.query)
        elif url.path == "/config.json":
            self._file(self.settings.config, "application/json", no_store=True)
        elif url.path == "/grafana-dashboard.json" and self.settings.grafana is not None:
            self._file(self.settings.grafana, "application/json", no_store=True,
                       extra={"Content-Disposition": 'attachment; filename="classroom-vllm-grafana.json"'})
        elif url.path in self.settings.static:
            path = self.settings.static[url.path]
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            textual = ctype.startswith(("text/", "application/javascript"))
            self._file(path, ctype + ("; charset=utf-8" if textual else ""))
        else:
            self._text(404, "not found")

    def _not_allowed(self) -> None:
        self._text(405, "read-only: GET only", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _file(self, path: Path, ctype: str, no_store: bool = False, extra: dict[str, str] | None = None) -> None:
        try:
            body = path.read_bytes()
        except OSError as exc:
            self._text(500, f"cannot read {path.name}: {exc.strerror}")
            return
        headers = {"Cache-Control": "no-store" if no_store else "max-age=300", **(extra or {})}
        self._send(200, body, ctype, headers)

    def _proxy(self, path: str, query: str) -> None:
        if len(query) > MAX_QUERY_BYTES:
            self._text(414, "query too long")
            return
        allowed = PROXIED[path]
        params = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k in allowed]
        upstream = f"{self.settings.prometheus}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(upstream, timeout=UPSTREAM_TIMEOUT_S) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # Prometheus' own 400/422/503 with its JSON error: pass it on
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            body = json.dumps({"status": "error", "errorType": "unavailable",
                               "error": f"Prometheus at {self.settings.prometheus} did not answer: {reason}"}).encode()
            status = 502
        self._send(status, body, "application/json", {"Cache-Control": "no-store"})


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: Settings) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.settings = settings
        super().__init__(address, Handler)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Serve the classroom's live dashboard.")
    ap.add_argument("--listen", default="127.0.0.1", help="address to bind (default: loopback)")
    ap.add_argument("--port", type=int, default=9190)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus' base URL")
    ap.add_argument("--static", type=Path, required=True, help="folder of the page's files")
    ap.add_argument("--config", type=Path, required=True, help="the panels' settings (dashboard.json)")
    ap.add_argument("--grafana", type=Path, help="the Grafana dashboard offered for download")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    key = os.environ.get(KEY_ENV, "")
    if not key and not is_loopback(args.listen):
        print(f"refusing to serve {args.listen} without a key: set {KEY_ENV} or listen on 127.0.0.1", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"port {args.port} is outside 1-65535", file=sys.stderr)
        return 2
    static = static_files(args.static) if args.static.is_dir() else {}
    if "/" not in static:
        print(f"no index.html in {args.static}", file=sys.stderr)
        return 2
    prometheus = args.prometheus.rstrip("/")
    if urllib.parse.urlsplit(prometheus).scheme not in ("http", "https"):
        print(f"--prometheus must be an http(s) URL, got {args.prometheus}", file=sys.stderr)
        return 2
    settings = Settings(prometheus, static, args.config, args.grafana, key)
    try:
        server = Server((args.listen, args.port), settings)
    except OSError as exc:
        print(f"cannot listen on {args.listen}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"serving the dashboard on http://{args.listen}:{args.port}/ ({'key required' if key else 'no key'})",
          file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
