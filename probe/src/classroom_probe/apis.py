"""Request functions, one per API, in a registry (`REQUEST_FUNCS`), as vLLM's benchmark library has.

Each API says where its requests go, what body they carry, how its stream is read into a
`RequestRecord` and how the server lists its models and version. The readers are the hot path:
each network read is stamped with `clock()` right after aiohttp hands it over (`iter_any()` yields
as soon as bytes arrive), before any parsing, and every event in that read carries that stamp.
Per event: one `json.loads`, a few dict look-ups, list appends.
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns

import aiohttp

from classroom_probe.clock import Clock
from classroom_probe.ndjson import NDJSONSplitter
from classroom_probe.prompts import Prompt
from classroom_probe.records import FailureKind, Live, RequestRecord
from classroom_probe.sse import SSEParser

_DONE = b"[DONE]"
_loads = json.loads

Reader = Callable[[aiohttp.ClientResponse, RequestRecord, Live, Clock], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BodyOptions:
    model: str
    max_tokens: int
    ignore_eos: bool
    continuous_usage: bool


@dataclass(frozen=True, slots=True)
class RequestFunc:
    """One API: request path, body, stream reader, model list and version endpoints."""

    name: str
    path: str  # under the API root
    models_path: str
    models_key: tuple[str, str]  # (list key, name key) in the models answer
    version_path: str  # the server's version, where it tells (vLLM: /version, Ollama: /api/version)
    software: str  # what answers version_path
    body: Callable[[BodyOptions, Prompt], dict[str, object]]
    read: Reader

    def root(self, base_url: str) -> str:
        base = base_url.rstrip("/")
        if self.name == "ollama":
            return base.removesuffix("/api")
        return base.removesuffix("/v1")

    def url(self, base_url: str) -> str:
        return self.root(base_url) + self.path

    def models_url(self, base_url: str) -> str:
        return self.root(base_url) + self.models_path

    def version_url(self, base_url: str) -> str:
        return self.root(base_url) + self.version_path

    def model_names(self, obj: object) -> list[str]:
        if not isinstance(obj, dict):
            return []
        key, name = self.models_key
        items = obj.get(key)
        if not isinstance(items, list):
            return []
        return [str(i[name]) for i in items if isinstance(i, dict) and name in i]

    def is_served(self, model: str, names: list[str]) -> bool:
        if model in names:
            return True
        # Ollama lists "llama3:latest" for a model asked for as "llama3".
        return self.name == "ollama" and ":" not in model and f"{model}:latest" in names


def _openai_body(chat: bool) -> Callable[[BodyOptions, Prompt], dict[str, object]]:
    def body(o: BodyOptions, prompt: Prompt) -> dict[str, object]:
        obj: dict[str, object] = {"model": o.model, "max_tokens": prompt.max_tokens or o.max_tokens, "stream": True}
        usage: dict[str, bool] = {"include_usage": True}
        if o.continuous_usage:
            usage["continuous_usage_stats"] = True
        obj["stream_options"] = usage
        if o.ignore_eos:
            obj["ignore_eos"] = True
        if chat:
            user = [{"role": "user", "content": prompt.text}]
            obj["messages"] = list(prompt.messages) if prompt.messages else user
        else:
            obj["prompt"] = prompt.text
        return obj

    return body


def _ollama_body(o: BodyOptions, prompt: Prompt) -> dict[str, object]:
    options: dict[str, object] = {"num_predict": prompt.max_tokens or o.max_tokens}
    return {"model": o.model, "prompt": prompt.text, "stream": True, "options": options}


def _inband_error(rec: RequestRecord, obj: object) -> None:
    rec.failure = FailureKind.ERROR_AFTER_TOKENS if rec.chunks else FailureKind.ERROR_BEFORE_FIRST_TOKEN
    rec.error = json.dumps(obj)[:300] if not isinstance(obj, str) else obj[:300]


def _malformed(rec: RequestRecord, payload: bytes) -> None:
    rec.failure = FailureKind.MALFORMED_EVENT
    rec.error = payload[:200].decode("utf-8", "replace")


# One flat function on purpose: this loop runs once per chunk, and calls cost more than branches here.
async def read_sse(  # noqa: PLR0912, PLR0915
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
            if not payload:
                continue  # an event with empty data carries nothing (spec-valid, e.g. a bare "data:")
            if payload == _DONE:
                done = True
                continue
            try:
                # str input skips json's byte-encoding detection; UnicodeDecodeError is a ValueError.
                obj = _loads(payload.decode())
            except (ValueError, RecursionError):
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
    finish(rec, usage_total)


async def read_chat(resp: aiohttp.ClientResponse, rec: RequestRecord, live: Live, clock: Clock) -> None:
    await read_sse(resp, rec, live, True, clock)


async def read_completions(resp: aiohttp.ClientResponse, rec: RequestRecord, live: Live, clock: Clock) -> None:
    await read_sse(resp, rec, live, False, clock)


async def read_ndjson(resp: aiohttp.ClientResponse, rec: RequestRecord, live: Live,
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
    finish(rec, state.eval_count)


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
    except (ValueError, RecursionError):
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


def finish(rec: RequestRecord, server_tokens: int | None) -> None:
    if rec.chunks == 0:
        rec.failure = FailureKind.EMPTY_OUTPUT
        rec.error = "the stream finished without any output text"
    if server_tokens is not None:
        rec.output_tokens = server_tokens
        rec.tokens_estimated = False
    else:
        rec.output_tokens = rec.chunks
        rec.tokens_estimated = True


REQUEST_FUNCS: dict[str, RequestFunc] = {
    "chat": RequestFunc("chat", "/v1/chat/completions", "/v1/models", ("data", "id"), "/version", "vLLM",
                        _openai_body(True), read_chat),
    "completions": RequestFunc("completions", "/v1/completions", "/v1/models", ("data", "id"), "/version", "vLLM",
                               _openai_body(False), read_completions),
    "ollama": RequestFunc("ollama", "/api/generate", "/api/tags", ("models", "name"), "/api/version", "Ollama",
                          _ollama_body, read_ndjson),
}
