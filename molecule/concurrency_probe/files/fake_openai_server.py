#!/usr/bin/env python3
"""Test stand-in for an OpenAI-compatible streaming server (not a model server; molecule only).

Serves /v1/models, /v1/chat/completions and /v1/completions with SSE streaming, and vLLM's open /health
(200, empty, no key), standard library only,
so the container's bare python3 runs it. Two behaviours:
  healthy  first token after 20 ms, then a token every 5 ms, usage on every chunk, [DONE]
  slow     first token after 1.5 s, and every third request answered 503
One process serves every `--serve PORT:BEHAVIOUR[:auth]`; on an `auth` port a request without the
--api-key Bearer key and the --require-header header gets a 401, which proves that the role passed the
key file and the extra headers to the probe.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Behaviour:
    ttft_s: float
    itl_s: float
    fail_every: int  # 0: never; n: every n-th completion request gets a 503


BEHAVIOURS = {
    "healthy": Behaviour(ttft_s=0.02, itl_s=0.005, fail_every=0),
    "slow": Behaviour(ttft_s=1.5, itl_s=0.005, fail_every=3),
}
MAX_TOKENS_CAP = 4096


def make_handler(
    model: str, behaviour: Behaviour, api_key: str | None, header: tuple[str, str] | None
) -> type[BaseHTTPRequestHandler]:
    counter = itertools.count(1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # the journal would fill with one line per request

        def _plain(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: object) -> None:
            self._plain(status, json.dumps(body).encode(), "application/json")

        def _chunk(self, payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def _authorised(self) -> bool:
            if api_key is not None and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._json(401, {"error": {"message": "missing or wrong API key"}})
                return False
            if header is not None and self.headers.get(header[0]) != header[1]:
                self._json(401, {"error": {"message": f"missing header {header[0]}"}})
                return False
            return True

        def do_GET(self) -> None:
            if self.path == "/health":  # vLLM leaves /health open, without the key, and answers it empty
                self._plain(200, b"", "application/json")
                return
            if not self._authorised():
                return
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "test"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if not self._authorised():
                return
            try:
                req = json.loads(body or b"{}")
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "body is not JSON"}})
                return
            chat = self.path == "/v1/chat/completions"
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            if req.get("model") != model:
                self._json(404, {"error": {"message": f"model {req.get('model')!r} does not exist"}})
                return
            with lock:
                n = next(counter)
            if behaviour.fail_every and n % behaviour.fail_every == 0:
                self._json(503, {"error": {"message": "overloaded (scripted)"}})
                return
            self._stream(req, chat)

        def _stream(self, req: dict[str, object], chat: bool) -> None:
            max_tokens = min(int(str(req.get("max_tokens") or 16)), MAX_TOKENS_CAP)
            opts = req.get("stream_options") or {}
            usage_each = isinstance(opts, dict) and bool(opts.get("continuous_usage_stats"))
            usage_last = isinstance(opts, dict) and bool(opts.get("include_usage"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(behaviour.ttft_s)
            for i in range(max_tokens):
                if i:
                    time.sleep(behaviour.itl_s)
                text = f" t{i % 4096}"
                choice: dict[str, object] = {"index": 0, "finish_reason": None}
                choice.update({"delta": {"content": text}} if chat else {"text": text})
                if i == max_tokens - 1:
                    choice["finish_reason"] = "length"
                event: dict[str, object] = {"id": "fake", "object": "chunk", "model": model, "choices": [choice]}
                if usage_each:
                    event["usage"] = {"prompt_tokens": 8, "completion_tokens": i + 1, "total_tokens": 9 + i}
                self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if usage_last:
                usage = {"prompt_tokens": 8, "completion_tokens": max_tokens, "total_tokens": 8 + max_tokens}
                event = {"id": "fake", "object": "chunk", "model": model, "choices": [], "usage": usage}
                self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="append", required=True, metavar="PORT:BEHAVIOUR[:auth]")
    parser.add_argument("--model", default="classroom-tiny")
    parser.add_argument("--api-key")
    parser.add_argument("--require-header", metavar="NAME:VALUE")
    args = parser.parse_args()
    header = None
    if args.require_header:
        name, _, value = args.require_header.partition(":")
        header = (name.strip(), value.strip())
    servers = []
    for spec in args.serve:
        port, behaviour, *flags = spec.split(":")
        auth = "auth" in flags
        handler = make_handler(
            args.model, BEHAVIOURS[behaviour], args.api_key if auth else None, header if auth else None
        )
        server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
        server.daemon_threads = True
        servers.append(server)
    # Every port is bound before any is served, so one open port means all are.
    threads = [threading.Thread(target=srv.serve_forever, daemon=True) for srv in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
