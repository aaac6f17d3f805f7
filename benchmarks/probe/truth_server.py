"""Loopback OpenAI-compatible streaming server that logs its own timing as ground truth.

It serves `/v1/completions`, `/v1/chat/completions` (SSE, or one JSON body when
`stream` is false) and `/v1/models`, with a configurable time to first token and
inter-token delay. For every request it logs, on CLOCK_MONOTONIC, the moment the
complete request was in hand (handler entry) and the moment each token event had
left the process (written to the socket with nothing left in the user-space
buffer). Those times, not the nominal delays, are the truth that client-side
measurements are compared with.

Each request gets a server id `rid`. The id is echoed in the response `id`
(`cmpl-<rid>`) and in the text of the first token (`rid<rid>`) so that a client
which keeps only the generated text (vllm bench serve) can still be matched. A
tag `[tag:XYZ]` found in the prompt is logged too, for clients that keep their
own prompt index.

The server is written on raw asyncio protocols with timer callbacks rather than
one coroutine per stream: it must stay cheap, because it shares the CPU with the
clients it measures. `--processes N` serves one port from N processes (SO_REUSEPORT)
for clients that spread their load over several processes; it keeps no truth log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

_TAG_RE = re.compile(r"\[tag:([A-Za-z0-9_.-]{1,64})\]")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 8 * 1024 * 1024

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)
_CHUNKED_END = b"0\r\n\r\n"
_DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Timing:
    """What the server was asked to inject."""

    ttft_s: float
    itl_s: float
    max_tokens_cap: int
    model: str


@dataclass
class RequestLog:
    """One request's truth, written as one JSONL line when it ends."""

    rid: int
    path: str
    t_enter: float
    tag: str | None = None
    x_request_id: str | None = None
    t_tokens: list[float] = field(default_factory=list)
    aborted: bool = False

    def to_json(self) -> str:
        # Manual formatting: json.dumps of float lists is a measurable share of the
        # server's CPU at 200K requests.
        toks = ",".join(f"{t:.9f}" for t in self.t_tokens)
        tag = json.dumps(self.tag)
        xri = json.dumps(self.x_request_id)
        return (
            f'{{"rid":{self.rid},"path":"{self.path}","tag":{tag},"x_request_id":{xri},'
            f'"t_enter":{self.t_enter:.9f},"n":{len(self.t_tokens)},"aborted":{str(self.aborted).lower()},'
            f'"t_tokens":[{toks}]}}\n'
        )


class TruthLog:
    """Buffered JSONL sink; nothing is flushed per request."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self.requests = 0
        self.tokens = 0

    def write(self, entry: RequestLog) -> None:
        self.requests += 1
        self.tokens += len(entry.t_tokens)
        if self._stream is not None:
            self._stream.write(entry.to_json())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            self._stream.close()
            self._stream = None


@dataclass(frozen=True, slots=True)
class Request:
    """A complete request as read off the socket; t_enter is the handler-entry truth."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    t_enter: float
    keep_alive: bool


class Counter:
    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        self._next += 1
        return self._next


def _chunk(payload: bytes) -> bytes:
    """Frame bytes as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _json_response(status: str, body: bytes, keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n%s" % (
        status.encode(),
        len(body),
        conn,
        body,
    )


class Stream:
    """One generation in flight, driven by loop timers rather than a coroutine."""

    def __init__(
        self,
        proto: HttpProtocol,
        log: RequestLog,
        *,
        n_tokens: int,
        prompt_tokens: int,
        chat: bool,
        include_usage: bool,
        continuous_usage: bool,
    ) -> None:
        self.proto = proto
        self.log = log
        self.n = n_tokens
        self.prompt_tokens = prompt_tokens
        self.k = 0
        self.timer: asyncio.TimerHandle | None = None
        self.pending_stamp = False
        self.continuous_usage = continuous_usage
        self.include_usage = include_usage
        timing = proto.timing
        created = int(time.time())
        rid = log.rid
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        self._head = b'data: {"id":"cmpl-%d","object":"%s","created":%d,"model":"%s","choices":[' % (
            rid,
            obj,
            created,
            timing.model.encode(),
        )
        self._chat = chat

    def start(self) -> None:
        self.proto.transport_write(_SSE_HEAD)
        loop = self.proto.loop
        self.timer = loop.call_later(self.proto.timing.ttft_s, self.emit)

    def _event(self, k: int) -> bytes:
        text = b" rid%d" % self.log.rid if k == 0 else b" t%d" % k
        finish = b'"length"' if k == self.n - 1 else b"null"
        if self._chat:
            role = b'"role":"assistant",' if k == 0 else b""
            choice = b'{"index":0,"delta":{%s"content":"%s"},"logprobs":null,"finish_reason":%s}' % (
                role,
                text,
                finish,
            )
        else:
            choice = b'{"index":0,"text":"%s","logprobs":null,"finish_reason":%s,"stop_reason":null}' % (
                text,
                finish,
            )
        usage = b""
        if self.continuous_usage:
            usage = b',"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (
                self.prompt_tokens,
                self.prompt_tokens + k + 1,
                k + 1,
            )
        return self._head + choice + b"]" + usage + b"}\n\n"

    def emit(self) -> None:
        self.timer = None
        if self.proto.closed:
            return
        k = self.k
        self.proto.transport_write(_chunk(self._event(k)))
        self.k = k + 1
        if self.proto.paused:
            # The event is still in user space: stamp it when the transport drains.
            self.pending_stamp = True
            return
        self._stamped(time.monotonic())

    def _stamped(self, now: float) -> None:
        self.log.t_tokens.append(now)
        if self.k < self.n:
            self.timer = self.proto.loop.call_later(self.proto.timing.itl_s, self.emit)
        else:
            self._finish()

    def resumed(self) -> None:
        if self.pending_stamp:
            self.pending_stamp = False
            self._stamped(time.monotonic())

    def _finish(self) -> None:
        tail = b""
        if self.include_usage:
            usage = b'{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (
                self.prompt_tokens,
                self.prompt_tokens + self.n,
                self.n,
            )
            tail = _chunk(self._head + b'],"usage":' + usage + b"}\n\n")
        self.proto.transport_write(tail + _chunk(_DONE_EVENT) + _CHUNKED_END)
        self.proto.stream_done(self)

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.log.aborted = True


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 server: keep-alive, Content-Length bodies, no pipelining needed."""

    def __init__(self, timing: Timing, sink: TruthLog, ids: Counter) -> None:
        self.timing = timing
        self.sink = sink
        self.ids = ids
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.stream: Stream | None = None
        self.paused = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # High water 0: any byte left in user space pauses us, so "resumed" means
        # every event written so far has reached the kernel.
        transport.set_write_buffer_limits(high=0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.abort()
            self.sink.write(self.stream.log)
            self.stream = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.stream is not None:
            self.stream.resumed()

    def transport_write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.stream is None:
            self._try_request()

    def stream_done(self, stream: Stream) -> None:
        self.sink.write(stream.log)
        self.stream = None
        if self.buf:
            self._try_request()

    def _try_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self._fail_close("431 Request Header Fields Too Large")
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._fail_close("400 Bad Request")
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY:
            self._fail_close("413 Payload Too Large")
            return
        if len(self.buf) < end + 4 + length:
            return
        t_enter = time.monotonic()
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        keep_alive = headers.get("connection", "").lower() != "close"
        self._dispatch(Request(method, target.split("?", 1)[0], headers, body, t_enter, keep_alive))

    def _fail_close(self, status: str) -> None:
        self.transport_write(_json_response(status, b'{"error":"bad request"}', keep_alive=False))
        if self.transport is not None:
            self.transport.close()

    def _reply(self, status: str, payload: dict[str, Any], keep_alive: bool) -> None:
        self.transport_write(_json_response(status, json.dumps(payload).encode(), keep_alive))
        if not keep_alive and self.transport is not None:
            self.transport.close()
        elif self.buf:
            self._try_request()

    def _dispatch(self, r: Request) -> None:
        method, path, headers, body, t_enter, keep_alive = r.method, r.path, r.headers, r.body, r.t_enter, r.keep_alive
        if method == "GET" and path == "/v1/models":
            model = {"id": self.timing.model, "object": "model", "created": 0, "owned_by": "truth-server"}
            self._reply("200 OK", {"object": "list", "data": [model]}, keep_alive)
            return
        if method == "GET" and path in ("/health", "/ping"):
            self._reply("200 OK", {}, keep_alive)
            return
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            self._reply("404 Not Found", {"error": {"message": f"no route {method} {path}", "code": 404}}, keep_alive)
            return
        try:
            req = json.loads(body)
        except ValueError:
            self._reply("400 Bad Request", {"error": {"message": "body is not JSON", "code": 400}}, keep_alive)
            return
        chat = path.endswith("/chat/completions")
        if req.get("model") != self.timing.model:
            msg = f"The model `{req.get('model')}` does not exist."
            self._reply("404 Not Found", {"error": {"message": msg, "code": 404}}, keep_alive)
            return
        prompt = _prompt_text(req, chat)
        tag_match = _TAG_RE.search(prompt)
        n = int(req.get("max_completion_tokens") or req.get("max_tokens") or 16)
        n = max(1, min(n, self.timing.max_tokens_cap))
        log = RequestLog(
            rid=self.ids.take(),
            path=path,
            t_enter=t_enter,
            tag=tag_match.group(1) if tag_match else None,
            x_request_id=headers.get("x-request-id"),
        )
        opts = req.get("stream_options") or {}
        prompt_tokens = len(prompt.split())
        if not req.get("stream"):
            self._non_streaming(log, n, prompt_tokens, chat, keep_alive)
            return
        self.stream = Stream(
            self,
            log,
            n_tokens=n,
            prompt_tokens=prompt_tokens,
            chat=chat,
            include_usage=bool(opts.get("include_usage")),
            continuous_usage=bool(opts.get("continuous_usage_stats")),
        )
        self.stream.start()

    def _non_streaming(self, log: RequestLog, n: int, prompt_tokens: int, chat: bool, keep_alive: bool) -> None:
        text = " ".join([f"rid{log.rid}"] + [f"t{k}" for k in range(1, n)])
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        payload = {
            "id": f"cmpl-{log.rid}",
            "object": "chat.completion" if chat else "text_completion",
            "model": self.timing.model,
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
        }
        delay = self.timing.ttft_s + (n - 1) * self.timing.itl_s

        def send() -> None:
            if self.closed:
                return
            self._reply("200 OK", payload, keep_alive)
            log.t_tokens.append(time.monotonic())
            self.sink.write(log)

        self.loop.call_later(delay, send)


def _prompt_text(req: dict[str, Any], chat: bool) -> str:
    if not chat:
        prompt = req.get("prompt", "")
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    parts = []
    for msg in req.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def serve(args: argparse.Namespace, sock: socket.socket, children: list[int]) -> None:
    timing = Timing(
        ttft_s=args.ttft_ms / 1000.0,
        itl_s=args.itl_ms / 1000.0,
        max_tokens_cap=args.max_tokens_cap,
        model=args.model,
    )
    stream = open(args.log, "w", buffering=1 << 20, encoding="utf-8") if args.log else None  # noqa: SIM115
    sink = TruthLog(stream)
    ids = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(timing, sink, ids), sock=sock, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not children and args.ready_fd is None:
        print(f"READY {sock.getsockname()[1]}", flush=True)
    elif args.ready_fd is not None:
        os.write(args.ready_fd, b"R")
        os.close(args.ready_fd)
    cpu0 = _cpu_seconds()
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_lifetime)
    except TimeoutError:
        print("truth server: lifetime limit reached", file=sys.stderr)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    sink.close()
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    summary = {"requests": sink.requests, "tokens": sink.tokens, "server_cpu_s": round(_cpu_seconds() - cpu0, 3)}
    print(json.dumps(summary), file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port; the chosen one is printed as READY <port>")
    p.add_argument("--model", default="classroom-tiny")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="delay from handler entry to the first token")
    p.add_argument("--itl-ms", type=float, default=10.0, help="delay between token events")
    p.add_argument("--max-tokens-cap", type=int, default=4096)
    p.add_argument("--log", help="JSONL truth log (omit for none)")
    p.add_argument("--max-lifetime", type=float, default=3600.0, help="seconds before the server stops by itself")
    p.add_argument("--uvloop", action="store_true", help="use uvloop where importable")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="serving processes on one port (SO_REUSEPORT), so the server outpaces a multi-process client; "
        "no --log with more than one",
    )
    args = p.parse_args(argv)
    args.ready_fd = None
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        p.error("--host: the truth server listens on loopback only")
    if not 1 <= args.processes <= 256:
        p.error("--processes: from 1 to 256")
    if args.processes > 1 and args.log:
        p.error("--log needs --processes 1 (one process, one truth log)")
    return args


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _die_with_parent() -> None:
    # A serving process must not outlive the parent if it is killed outright (prctl PR_SET_PDEATHSIG).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sock = _listen(args.host, args.port)
    children: list[int] = []
    if args.processes > 1:
        port = sock.getsockname()[1]
        read_end, write_end = os.pipe()
        for _ in range(args.processes - 1):
            pid = os.fork()
            if pid == 0:  # a serving process: its own socket on the same port, the kernel spreads connections
                os.close(read_end)
                _die_with_parent()
                sock.close()
                args.ready_fd = write_end
                return _serve_here(args, _listen(args.host, port), [])
            children.append(pid)
        os.close(write_end)
        ready = 0
        while ready < len(children):
            got = os.read(read_end, 64)
            if not got:
                print("truth server: a serving process did not start", file=sys.stderr)
                return 1
            ready += len(got)
        os.close(read_end)
        print(f"READY {port}", flush=True)
    return _serve_here(args, sock, children)


def _serve_here(args: argparse.Namespace, sock: socket.socket, children: list[int]) -> int:
    if args.uvloop:
        try:
            import uvloop  # noqa: PLC0415

            uvloop.install()
        except ImportError:
            print("truth server: uvloop not importable, using asyncio's loop", file=sys.stderr)
    asyncio.run(serve(args, sock, children))
    return 0


if __name__ == "__main__":
    sys.exit(main())
