"""SSE parsing per the spec, including every line-end and framing variant the peers get wrong."""

import pytest
from classroom_probe.ndjson import NDJSONSplitter
from classroom_probe.sse import SSEParser


def events(*chunks: bytes) -> list[tuple[str, bytes]]:
    p = SSEParser()
    out = []
    for c in chunks:
        out += [(e.event, e.data) for e in p.feed(c)]
    return out


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_line_ends(end: bytes) -> None:
    stream = b"data: a" + end + end + b"data: b" + end + end
    assert events(stream) == [("message", b"a"), ("message", b"b")]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_byte_by_byte(end: bytes) -> None:
    stream = (b": comment" + end + b"event: delta" + end + b"data:x" + end + b"data: y" + end + end
              + b"data: z" + end + end)
    assert events(*[stream[i:i + 1] for i in range(len(stream))]) == [("delta", b"x\ny"), ("message", b"z")]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    # "\r" ends a read, "\n" opens the next: one line end, not an empty line (which would dispatch early).
    assert events(b"data: a\r", b"\ndata: b\r\n\r\n") == [("message", b"a\nb")]


def test_cr_at_end_of_read_dispatches_without_waiting() -> None:
    p = SSEParser()
    assert [e.data for e in p.feed(b"data: a\r\r")] == [b"a"]


def test_comments_and_keepalives_are_ignored() -> None:
    assert events(b": keep-alive\n\n:\n\ndata: a\n\n") == [("message", b"a")]


def test_data_without_space_and_with_two_spaces() -> None:
    # Only one leading space is removed.
    assert events(b"data:a\n\ndata:  b\n\n") == [("message", b"a"), ("message", b" b")]


def test_field_without_colon_and_unknown_fields() -> None:
    # A bare "data" line is the field "data" with an empty value (spec), so it dispatches an empty event.
    assert events(b"data\n\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n") == [("message", b""), ("message", b"x")]


def test_empty_data_line_dispatches_empty_event() -> None:
    # "data" with no value appends an empty line: the data buffer is non-empty, so the event fires with "".
    assert events(b"data:\n\n") == [("message", b"")]


def test_event_name_resets_after_dispatch() -> None:
    assert events(b"event: error\ndata: e\n\ndata: m\n\n") == [("error", b"e"), ("message", b"m")]


def test_incomplete_event_is_not_dispatched_and_is_pending() -> None:
    p = SSEParser()
    assert p.feed(b"data: partial\n") == []
    assert p.pending()
    p2 = SSEParser()
    assert p2.feed(b"data: partial") == []
    assert p2.pending()


def test_huge_event_in_many_reads() -> None:
    payload = b"y" * 1_000_000
    stream = b"data: " + payload + b"\n\n"
    chunks = [stream[i:i + 65536] for i in range(0, len(stream), 65536)]
    assert events(*chunks) == [("message", payload)]


def test_many_events_in_one_read() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))
    assert [d for _, d in events(stream)] == [str(i).encode() for i in range(100)]


def test_ndjson_split_lines_and_tail() -> None:
    s = NDJSONSplitter()
    assert s.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert s.feed(b":2}\n\n  \n") == [b'{"b":2}']
    assert s.feed(b'{"c":3}') == []
    assert s.pending() == b'{"c":3}'


def test_ndjson_crlf() -> None:
    assert NDJSONSplitter().feed(b'{"a":1}\r\n{"b":2}\r\n') == [b'{"a":1}', b'{"b":2}']


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_leading_byte_order_mark_is_dropped_even_split_across_reads(cut: int) -> None:
    stream = b"\xef\xbb\xbfdata: a\n\ndata: b\n\n"
    chunks = [stream[:cut], stream[cut:]] if cut else [stream]
    assert events(*chunks) == [("message", b"a"), ("message", b"b")]


def test_bytes_that_only_look_like_a_mark_are_kept() -> None:
    # "\xef" then "x": not a byte-order mark, so the first line is the unknown field "\xefxdata" (ignored).
    assert events(b"\xef", b"xdata: a\n\ndata: b\n\n") == [("message", b"b")]
    p = SSEParser()
    assert p.feed(b"\xef\xbb") == [] and p.pending()


def test_empty_data_dispatches_with_empty_data_per_spec() -> None:
    # The client skips such events; the parser follows the spec and dispatches them.
    assert events(b"data:\n\ndata: \n\n") == [("message", b""), ("message", b"")]
