"""Stream classification on hand-made byte streams, without a network."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from classroom_probe.apis import REQUEST_FUNCS, BodyOptions, read_ndjson, read_sse
from classroom_probe.records import Live, RequestRecord


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


class _Resp:
    def __init__(self, chunks: list[bytes]) -> None:
        self.content = _Content(chunks)


def sse(*chunks: bytes, chat: bool = True) -> RequestRecord:
    rec = RequestRecord(0, 0, True)
    asyncio.run(read_sse(_Resp(list(chunks)), rec, Live(), chat))  # type: ignore[arg-type]
    return rec


def ndjson(*chunks: bytes) -> RequestRecord:
    rec = RequestRecord(0, 0, True)
    asyncio.run(read_ndjson(_Resp(list(chunks)), rec, Live()))  # type: ignore[arg-type]
    return rec


TOK = b'data: {"choices":[{"delta":{"content":"a"}}],"usage":{"completion_tokens":%d}}\n\n'
DONE = b"data: [DONE]\n\n"


def test_success_with_usage() -> None:
    rec = sse(TOK % 1, TOK % 2, TOK % 3, b'data: {"choices":[],"usage":{"completion_tokens":3}}\n\n', DONE)
    assert rec.ok and rec.output_tokens == 3 and not rec.tokens_estimated and rec.gap_tokens == [1, 1]


@pytest.mark.parametrize(("chunks", "kind"), [
    ((b"data: [1, 2]\n\n", DONE), "malformed_event"),
    ((b'data: "text"\n\n', DONE), "malformed_event"),
    ((b"data: {\"choices\": [{\"delta\": \"x\"}]}\n\n", DONE), "malformed_event"),
    ((b"data: {\"choices\": \"no\"}\n\n", DONE), "malformed_event"),
    ((b"data: {oops\n\n",), "malformed_event"),
    ((b"data:\n\n", DONE), "empty_output"),
    ((b'event: error\ndata: {"message": "overloaded"}\n\n', DONE), "error_before_first_token"),
    ((TOK % 1, b'event: error\ndata: {"message": "died"}\n\n', DONE), "error_after_tokens"),
    ((TOK % 1, b'data: {"error": {"message": "died", "code": 500}}\n\n', DONE), "error_after_tokens"),
    ((b'data: {"error": "bad request"}\n\n',), "error_before_first_token"),
    ((TOK % 1, TOK % 2), "closed_without_done"),
    ((TOK % 1, b'data: {"choices":[{"delta":{"content":"b"}}]'), "closed_without_done"),
    ((b"", ), "closed_without_done"),
    ((b'data: {"choices":[{"delta":{"content":""}}]}\n\n', DONE), "empty_output"),
    ((DONE,), "empty_output"),
])
def test_sse_failures(chunks: tuple[bytes, ...], kind: str) -> None:
    assert sse(*chunks).failure_key == kind


def test_unexpected_exception_is_a_failure_not_a_crash() -> None:
    class Exploding:
        async def iter_any(self) -> AsyncIterator[bytes]:
            yield TOK % 1
            raise RuntimeError("surprise")

    class Resp:
        content = Exploding()

    class Session:
        def post(self, *_: object, **__: object) -> "Session":
            return self

        async def __aenter__(self) -> object:
            r = Resp()
            r.status = 200  # type: ignore[attr-defined]
            return r

        async def __aexit__(self, *_: object) -> None:
            return None

    from classroom_probe.client import Endpoint, send  # noqa: PLC0415

    endpoint = Endpoint(REQUEST_FUNCS["chat"], "http://x/v1/chat/completions", {}, BodyOptions("m", 4, False, True))
    rec = RequestRecord(0, 0, True)
    asyncio.run(send(Session(), endpoint, b"{}", rec, Live()))  # type: ignore[arg-type]
    assert rec.failure_key == "client_error" and "surprise" in rec.error and rec.output_tokens == 1


def test_data_after_done_is_ignored() -> None:
    rec = sse(TOK % 1, DONE, b"data: {broken\n\n")
    assert rec.ok and rec.output_tokens == 1


def test_reasoning_content_counts_as_first_token() -> None:
    rec = sse(b'data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}\n\n', DONE)
    assert rec.ok and rec.chunks == 1 and rec.tokens_estimated


def test_completions_text() -> None:
    rec = sse(b'data: {"choices":[{"text":"a"}]}\n\n', b'data: {"choices":[{"text":"b"}]}\n\n', DONE, chat=False)
    assert rec.ok and rec.output_tokens == 2 and rec.tokens_estimated and len(rec.gaps_ns) == 1


@pytest.mark.parametrize(("chunks", "kind"), [
    ((b'{"response":"a","done":false}\n', b'{"error":"runner died"}\n'), "error_after_tokens"),
    ((b'{"error":"model not found"}\n',), "error_before_first_token"),
    ((b"[1]\n",), "malformed_event"),
    ((b'{"response":"a","done":false}\n', b"{trunc"), "malformed_event"),
    ((b'{"response":"a","done":false}\n',), "closed_without_done"),
    ((b'{"response":"","done":true,"eval_count":0}\n',), "empty_output"),
])
def test_ndjson_failures(chunks: tuple[bytes, ...], kind: str) -> None:
    assert ndjson(*chunks).failure_key == kind


def test_ndjson_success_split_across_reads() -> None:
    rec = ndjson(b'{"response":"a","do', b'ne":false}\n{"response":"b","done":false}\n{"done":true,"eval_count":2}')
    assert rec.ok and rec.output_tokens == 2 and not rec.tokens_estimated and rec.chunks == 2


def test_empty_data_payload_is_not_malformed() -> None:
    # "data:" alone is a spec-valid event with empty data (e.g. a proxy's keep-alive): it carries nothing.
    rec = sse(b"data:\n\n", TOK % 1, b"data: \n\n", TOK % 2, DONE)
    assert rec.ok and rec.output_tokens == 2 and rec.chunks == 2


@pytest.mark.parametrize("split", [0, 1, 2, 3, 5])
def test_leading_byte_order_mark_does_not_hide_the_first_event(split: int) -> None:
    stream = b"\xef\xbb\xbf" + TOK % 1 + TOK % 2 + DONE
    rec = sse(*([stream[:split], stream[split:]] if split else [stream]))
    assert rec.ok and rec.chunks == 2 and rec.output_tokens == 2


def test_a_byte_order_mark_later_in_the_stream_is_data() -> None:
    # Only a leading mark is dropped; anywhere else it is part of the line (here: an unknown field, ignored).
    rec = sse(TOK % 1, b"\xef\xbb\xbfdata: {broken\n\n", TOK % 2, DONE)
    assert rec.ok and rec.chunks == 2
