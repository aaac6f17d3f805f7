#!/usr/bin/env python3
"""TEST STAND-IN for a classroom box's vLLM (not vLLM; molecule only).

Serves the project's fake OpenAI server (fake_openai_server.py, copied beside this file) on the box's
network address, adds vLLM's open `/health`, and on SIGTERM writes how many completions were in flight
(the requests a stopped box costs) to --inflight-file before it exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import fake_openai_server as fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--behaviour", default="healthy", choices=sorted(fake.BEHAVIOURS))
    parser.add_argument("--model", default="classroom-tiny")
    parser.add_argument("--api-key-file", type=Path, help="file holding the Bearer key the box requires")
    parser.add_argument("--inflight-file", type=Path, required=True)
    args = parser.parse_args()
    key = args.api_key_file.read_text(encoding="utf-8").strip() if args.api_key_file else None
    base = fake.make_handler(args.model, fake.BEHAVIOURS[args.behaviour], key, None)
    lock = threading.Lock()
    inflight = [0]

    class Handler(base):  # type: ignore[misc,valid-type]
        def do_GET(self) -> None:
            if self.path == "/health":  # vLLM leaves /health open, without the key
                self._json(200, {})
                return
            super().do_GET()

        def do_POST(self) -> None:
            with lock:
                inflight[0] += 1
            try:
                super().do_POST()
            finally:
                with lock:
                    inflight[0] -= 1

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(*_: object) -> None:
        with lock:
            args.inflight_file.write_text(f"{inflight[0]}\n", encoding="utf-8")
        os._exit(0)  # drop open streams at once, as a box that goes away does

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
