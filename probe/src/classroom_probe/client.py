"""One streaming request, classified into success or a failure kind, and the dispatcher that sends
the requests a load shape asks for.

`send` stamps the request's start immediately before handing it to aiohttp, runs the API's reader
(apis.py) and turns every exception into a failure kind: it never raises, except CancelledError.
"""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

import aiohttp

from classroom_probe.apis import REQUEST_FUNCS, BodyOptions, RequestFunc
from classroom_probe.clock import Clock
from classroom_probe.config import Config
from classroom_probe.prompts import Prompt
from classroom_probe.records import FailureKind, Live, RequestRecord

__all__ = ["Dispatcher", "Endpoint", "Live", "send"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how requests go: the API's request function, URL and fixed headers."""

    func: RequestFunc
    url: str
    headers: dict[str, str]
    options: BodyOptions

    @classmethod
    def from_config(cls, config: Config) -> "Endpoint":
        func = REQUEST_FUNCS[config.api]
        headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        options = BodyOptions(config.model, config.max_tokens, config.ignore_eos, config.continuous_usage)
        return cls(func, func.url(config.base_url), headers, options)

    @property
    def api(self) -> str:
        return self.func.name

    def body(self, prompt: Prompt) -> bytes:
        return json.dumps(self.func.body(self.options, prompt)).encode()


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
            await endpoint.func.read(resp, rec, live, clock)
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


class Dispatcher:
    """Sends the requests a load shape asks for and hands each record to the sink (statistics, records
    file, hooks). Implements `loads.Sender`."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, prompts: list[Prompt], live: Live,
                 sink: Callable[[RequestRecord], None], *, request_id_header: str | None = None,
                 clock: Clock = perf_counter_ns, worker: int = 0, workers: int = 1) -> None:
        self.session = session
        self.endpoint = endpoint
        self.bodies = [endpoint.body(p) for p in prompts]  # serialised once, not per request
        self.prompt_count = len(self.bodies)
        self.live = live
        self.sink = sink
        self.request_id_header = request_id_header
        self.clock = clock
        self._issued = 0
        self._worker = worker
        self._workers = workers

    def next_index(self) -> int:
        index = self._issued * self._workers + self._worker
        self._issued += 1
        return index

    async def one(self, index: int, student: int | None, measured: bool, prompt_index: int) -> None:
        rec = RequestRecord(index, student, measured)
        headers = None
        if self.request_id_header:
            # Lets a test server log its own times per request under the probe's index.
            headers = {**self.endpoint.headers, self.request_id_header: str(rec.index)}
        try:
            await send(self.session, self.endpoint, self.bodies[prompt_index % len(self.bodies)], rec, self.live,
                       headers=headers, clock=self.clock)
        finally:
            live = self.live
            live.done += 1
            key = rec.failure_key
            if key is not None:
                live.failed += 1
                live.failures[key] = live.failures.get(key, 0) + 1
            self.sink(rec)
