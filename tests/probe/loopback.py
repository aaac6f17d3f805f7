"""A loopback OpenAI/Ollama-like server with one scripted behaviour per model name.

Runs its own event loop in a thread so the probe under test can own the main one.
"""

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

OK_SSE = ("ok", "ok_crlf", "ok_cr", "ok_nousage", "ok_big", "ok_multi", "ok_slow")
FAILING_SSE = {
    "http_503": "http_503",
    "http_429": "http_429",
    "error_before": "error_before_first_token",
    "error_after": "error_after_tokens",
    "no_done": "closed_without_done",
    "cut": "closed_without_done",
    "malformed": "malformed_event",
    "bad_shape": "malformed_event",
    "empty": "empty_output",
    "stall_body": "read_timeout",
    "stall_headers": "read_timeout",
}
OLLAMA = ("llama-ok", "llama-noeval", "llama-error", "llama-nodone", "llama-malformed", "llama-tail")
MODELS = (*OK_SSE, *FAILING_SSE, *OLLAMA)


class State:
    def __init__(self) -> None:
        self.generated = 0  # tokens sent, as vllm:generation_tokens_total
        self.running = 0
        self.requests = 0
        self.headers_seen: list[dict[str, str]] = []


def _chunk(chat: bool, text: str, cum: int | None) -> dict[str, object]:
    choice: dict[str, object] = {"index": 0, "finish_reason": None}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    obj: dict[str, object] = {"id": "x", "object": "chunk", "choices": [choice]}
    if cum is not None:
        obj["usage"] = {"prompt_tokens": 3, "completion_tokens": cum, "total_tokens": 3 + cum}
    return obj


def _frame(obj: object, end: str = "\n", prefix: str = "data: ") -> bytes:
    payload = obj if isinstance(obj, str) else json.dumps(obj)
    return f"{prefix}{payload}{end}{end}".encode()


async def _openai(request: web.Request, state: State, chat: bool) -> web.StreamResponse:
    body = await request.json()
    model = body["model"]
    n = int(body.get("max_tokens", 8))
    state.requests += 1
    state.headers_seen.append(dict(request.headers))
    if model.startswith("http_"):
        return web.Response(status=int(model[5:]), text="scripted status")
    if model == "stall_headers":
        await asyncio.sleep(5)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    state.running += 1
    try:
        return await _stream(resp, state, model, n, chat, request)
    finally:
        state.running -= 1


async def _stream(resp: web.StreamResponse, state: State, model: str, n: int, chat: bool,
                  request: web.Request) -> web.StreamResponse:
    end = "\r\n" if model == "ok_crlf" else "\r" if model == "ok_cr" else "\n"
    prefix = "data:" if model == "ok_crlf" else "data: "
    usage = model != "ok_nousage"
    step = 2 if model == "ok_multi" else 1
    if model == "stall_body":
        await resp.write(_frame(_chunk(chat, "t0", 1)))
        await asyncio.sleep(5)
    if model == "error_before":
        await resp.write(_frame({"error": {"message": "boom", "code": 500}}))
        await resp.write(_frame("[DONE]"))
        return resp
    if model == "malformed":
        await resp.write(b"data: {not json\n\n")
        return resp
    if model == "bad_shape":
        await resp.write(_frame({"choices": [{"no_delta": 1}]}))
        return resp
    if model == "empty":
        await resp.write(_frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        await resp.write(_frame("[DONE]"))
        return resp
    if model == "ok_crlf":
        await resp.write(b": keep-alive\r\n\r\nevent: message\r\n")
    cum = 0
    for i in range(0, n, step):
        k = min(step, n - i)
        cum += k
        text = " ".join(f"t{j}" for j in range(i, i + k))
        if model == "ok_big" and i == 0:
            text = "x" * 200_000
        state.generated += k
        await resp.write(_frame(_chunk(chat, text, cum if usage else None), end, prefix))
        if model == "ok_slow":
            await asyncio.sleep(0.01)
        if model == "error_after" and cum >= n // 2:
            await resp.write(_frame({"error": {"message": "EngineCore encountered an issue.", "code": 500}}))
            await resp.write(_frame("[DONE]"))
            return resp
        if model == "cut" and cum >= n // 2:
            assert request.transport is not None
            request.transport.abort()
            return resp
    if model == "no_done":
        return resp
    if usage:
        final = {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": cum}}
        await resp.write(_frame(final, end, prefix))
    await resp.write(_frame("[DONE]", end, prefix))
    return resp


async def _ollama(request: web.Request, state: State) -> web.StreamResponse:
    body = await request.json()
    model = body["model"].removesuffix(":latest")
    n = int(body.get("options", {}).get("num_predict", 8))
    state.requests += 1
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    if model == "llama-error":
        await resp.write(b'{"error":"model runner has unexpectedly stopped"}\n')
        return resp
    if model == "llama-malformed":
        await resp.write(b'{"response": "a"\n')
        return resp
    for i in range(n):
        state.generated += 1
        await resp.write(json.dumps({"model": model, "response": f"t{i} ", "done": False}).encode() + b"\n")
    if model == "llama-nodone":
        return resp
    final: dict[str, object] = {"model": model, "response": "", "done": True, "done_reason": "length"}
    if model != "llama-noeval":
        final["eval_count"] = n
    tail = b"" if model == "llama-tail" else b"\n"  # last object without its newline still counts
    await resp.write(json.dumps(final).encode() + tail)
    return resp


def make_app(state: State) -> web.Application:
    app = web.Application()

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})

    async def tags(_: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": f"{m}:latest"} for m in OLLAMA]})

    async def metrics(_: web.Request) -> web.Response:
        text = (
            "# HELP vllm:generation_tokens_total Generated tokens\n# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{model_name="m",engine="0"}} {float(state.generated)}\n'
            f'vllm:num_requests_running{{model_name="m",engine="0"}} {float(state.running)}\n'
            'vllm:num_requests_waiting{model_name="m",engine="0"} 0.0\n'
            'vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.25\n'
            'vllm:num_preemptions_total{model_name="m",engine="0"} 0.0\n'
        )
        return web.Response(text=text)

    async def chat(request: web.Request) -> web.StreamResponse:
        return await _openai(request, state, True)

    async def completions(request: web.Request) -> web.StreamResponse:
        return await _openai(request, state, False)

    async def generate(request: web.Request) -> web.StreamResponse:
        return await _ollama(request, state)

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.1+loopback"})

    app.router.add_get("/version", version)
    app.router.add_get("/api/version", version)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/api/generate", generate)
    return app


@contextmanager
def serve() -> Iterator[tuple[str, State]]:
    """Start the server on a free loopback port in a thread; yields (base_url, state)."""
    state = State()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(state), handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10), "loopback server did not start"
    try:
        yield f"http://127.0.0.1:{holder['port']}", state
    finally:
        runner = holder["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
