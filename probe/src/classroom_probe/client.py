"""One streaming request against one API, classified into success or a failure kind.

This is the hot path. Each network read is stamped with `clock()` right after aiohttp hands it over
(`iter_any()` yields as soon as bytes arrive), before any parsing; every event in that read carries
that stamp. The runner's clock is the poll time of the loop iteration (see clock.py); the default
is `perf_counter_ns`. Per event: one `json.loads`, a few dict look-ups, list appends.
"""

import asyncio
import json
from dataclasses import dataclass
from time import perf_counter_ns

import aiohttp

from classroom_probe.clock import Clock
from classroom_probe.config import Config
from classroom_probe.ndjson import NDJSONSplitter
from classroom_probe.prompts import Prompt
from classroom_probe.records import FailureKind, RequestRecord
from classroom_probe.sse import SSEParser

_DONE = b"[DONE]"
_loads = json.loads


class Live:
    """Counters the progress line and the 1 Hz throughput series read; updated on the hot path."""

    __slots__ = ("done", "failed", "failures", "inflight", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.done = 0
        self.failed = 0
        self.inflight = 0
        self.failures: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how requests go: URL, API flavour, fixed headers, and the body template."""

    url: str
    api: str
    headers: dict[str, str]
    model: str
    max_tokens: int
    ignore_eos: bool
    continuous_usage: bool

    @classmethod
    def from_config(cls, config: Config) -> "Endpoint":
        base = config.base_url.rstrip("/")
        if config.api == "ollama":
            url = base.removesuffix("/api") + "/api/generate"
        else:
            root = base if base.endswith("/v1") else base + "/v1"
            url = root + ("/chat/completions" if config.api == "chat" else "/completions")
        headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        return cls(
            url, config.api, headers, config.model, config.max_tokens, config.ignore_eos, config.continuous_usage
        )

    def body(self, prompt: Prompt) -> bytes:
        max_tokens = prompt.max_tokens or self.max_tokens
        obj: dict[str, object]
        if self.api == "ollama":
            options: dict[str, object] = {"num_predict": max_tokens}
            obj = {"model": self.model, "prompt": prompt.text, "stream": True, "options": options}
        else:
            obj = {"model": self.model, "max_tokens": max_tokens, "stream": True}
            usage: dict[str, bool] = {"include_usage": True}
            if self.continuous_usage:
                usage["continuous_usage_stats"] = True
            obj["stream_options"] = usage
            if self.ignore_eos:
                obj["ignore_eos"] = True
            if self.api == "chat":
                user = [{"role": "user", "content": prompt.text}]
                obj["messages"] = list(prompt.messages) if prompt.messages else user
            else:
                obj["prompt"] = prompt.text
        return json.dumps(obj).encode()


async def send(session: aiohttp.ClientSession, endpoint: Endpoint, body: bytes, rec: RequestRecord, live: Live,
               *, headers: dict[str, str] | None = None, clock: Clock = perf_counter_ns) -> None:
    """Run one request to completion, filling `rec`. Never raises, except CancelledError."""
    live.inflight += 1
    rec.start_ns = perf_counter_ns()
    try:
        async with session.post(endpoint.url, data=body, headers=headers or endpoint.headers) as resp:
            if resp.status != 200:
                rec.failure = FailureKind.HTTP_STATUS
                rec.http_status = resp.status
                rec.error = (await resp.content.read(500)).decode("utf-8", "replace")
                return
            if endpoint.api == "ollama":
                await _read_ndjson(resp, rec, live, clock)
            else:
                await _read_sse(resp, rec, live, endpoint.api == "chat", clock)
    except aiohttp.ConnectionTimeoutError as exc:
        _fail(rec, FailureKind.CONNECT_TIMEOUT, exc)
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        _fail(rec, FailureKind.READ_TIMEOUT, exc)
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        _fail(rec, FailureKind.CONNECT_REFUSED if refused else FailureKind.CONNECT_ERROR, exc)
    except (aiohttp.ClientError, OSError, UnicodeDecodeError) as exc:
        # Payload errors, disconnects, resets: the stream ended before [DONE].
        _fail(rec, FailureKind.CLOSED_WITHOUT_DONE, exc)
    except Exception as exc:
        _fail(rec, FailureKind.CLIENT_ERROR, exc)
    except asyncio.CancelledError:
        if rec.failure is None:
            rec.failure = FailureKind.DRAIN_TIMEOUT
            rec.error = "cancelled at the drain deadline"
        raise
    finally:
        rec.end_ns = perf_counter_ns()
        live.inflight -= 1
        if rec.output_tokens == 0 and rec.chunks:
            # A failed stream: its tokens still count toward the server cross-check, as chunks seen.
            rec.output_tokens = rec.chunks


def _fail(rec: RequestRecord, kind: FailureKind, exc: BaseException) -> None:
    if rec.failure is None:
        rec.failure = kind
        rec.error = f"{type(exc).__name__}: {exc}"[:300]


def _inband_error(rec: RequestRecord, obj: object) -> None:
    rec.failure = FailureKind.ERROR_AFTER_TOKENS if rec.chunks else FailureKind.ERROR_BEFORE_FIRST_TOKEN
    rec.error = json.dumps(obj)[:300] if not isinstance(obj, str) else obj[:300]


def _malformed(rec: RequestRecord, payload: bytes) -> None:
    rec.failure = FailureKind.MALFORMED_EVENT
    rec.error = payload[:200].decode("utf-8", "replace")


# One flat function on purpose: this loop runs once per chunk, and calls cost more than branches here.
async def _read_sse(  # noqa: PLR0912, PLR0915
    resp: aiohttp.ClientResponse, rec: RequestRecord, live: Live, chat: bool, clock: Clock = perf_counter_ns
) -> None:
    parser = SSEParser()
    feed = parser.feed
    gaps = rec.gaps_ns
    gap_tokens = rec.gap_tokens
    done = False
    usage_total: int | None = None
    prev_cum = 0
    last_content = 0
    async for data in resp.content.iter_any():
        now = clock()
        for ev in feed(data):
            if done:
                continue  # bytes after [DONE] change nothing
            payload = ev.data
            if payload == _DONE:
                done = True
                continue
            try:
                # str input skips json's byte-encoding detection; UnicodeDecodeError is a ValueError.
                obj = _loads(payload.decode())
            except ValueError:
                _malformed(rec, payload)
                return
            if type(obj) is not dict:
                _malformed(rec, payload)
                return
            rec.last_event_ns = now
            err = obj.get("error")
            if err is not None or ev.event == "error":
                _inband_error(rec, err if err is not None else obj)
                return
            cum = None
            usage = obj.get("usage")
            if type(usage) is dict:
                cum = usage.get("completion_tokens")
                if type(cum) is int:
                    usage_total = cum
                else:
                    cum = None
            choices = obj.get("choices")
            if not choices:
                continue
            try:
                c0 = choices[0]
                if chat:
                    delta = c0["delta"]
                    text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
                else:
                    text = c0.get("text")
            except (KeyError, TypeError, IndexError, AttributeError):
                _malformed(rec, payload)
                return
            if not text:
                continue  # tokens of a chunk without text reach the student with the next text
            ntok = 0
            if cum is not None:
                ntok = cum - prev_cum
                prev_cum = cum
            rec.chunks += 1
            live.tokens += ntok or 1
            if rec.first_token_ns is None:
                rec.first_token_ns = now
            else:
                gaps.append(now - last_content)
                gap_tokens.append(ntok)
            last_content = now
    if not done:
        rec.failure = FailureKind.CLOSED_WITHOUT_DONE
        rec.error = "stream closed without [DONE]" + (" mid-event" if parser.pending() else "")
        return
    _finish(rec, usage_total)


async def _read_ndjson(resp: aiohttp.ClientResponse, rec: RequestRecord, live: Live,
                       clock: Clock = perf_counter_ns) -> None:
    splitter = NDJSONSplitter()
    state = _NDState()
    now = clock()
    async for data in resp.content.iter_any():
        now = clock()
        for line in splitter.feed(data):
            if not _ollama_line(line, now, rec, live, state):
                return
    tail = splitter.pending()
    if tail and not _ollama_line(tail, now, rec, live, state):
        return
    if not state.done:
        rec.failure = FailureKind.CLOSED_WITHOUT_DONE
        rec.error = 'stream closed without "done": true'
        return
    _finish(rec, state.eval_count)


class _NDState:
    __slots__ = ("done", "eval_count", "last_content")

    def __init__(self) -> None:
        self.done = False
        self.eval_count: int | None = None
        self.last_content = 0


def _ollama_line(line: bytes, now: int, rec: RequestRecord, live: Live, state: _NDState) -> bool:
    """Handle one NDJSON object; False when the request has failed."""
    if state.done:
        return True
    try:
        obj = _loads(line)
    except ValueError:
        _malformed(rec, line)
        return False
    if type(obj) is not dict:
        _malformed(rec, line)
        return False
    rec.last_event_ns = now
    if obj.get("error") is not None:
        _inband_error(rec, obj["error"])
        return False
    text = obj.get("response") or obj.get("thinking")
    if text:
        rec.chunks += 1
        live.tokens += 1
        if rec.first_token_ns is None:
            rec.first_token_ns = now
        else:
            rec.gaps_ns.append(now - state.last_content)
            rec.gap_tokens.append(0)
        state.last_content = now
    if obj.get("done") is True:
        state.done = True
        count = obj.get("eval_count")
        if type(count) is int:
            state.eval_count = count
    return True


def _finish(rec: RequestRecord, server_tokens: int | None) -> None:
    if rec.chunks == 0:
        rec.failure = FailureKind.EMPTY_OUTPUT
        rec.error = "the stream finished without any output text"
    if server_tokens is not None:
        rec.output_tokens = server_tokens
        rec.tokens_estimated = False
    else:
        rec.output_tokens = rec.chunks
        rec.tokens_estimated = True
