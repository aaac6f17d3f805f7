"""Incremental Server-Sent Events parser (WHATWG HTML spec, "event stream interpretation").

Fed raw bytes as they come off the socket; returns complete events. Handles LF, CRLF and CR line
ends (including a CRLF split across two reads), comment lines, `event:`/`id:`/`retry:` fields,
`data:` with or without the space, multi-line data, a leading UTF-8 byte-order mark (dropped, even
when split across reads), and events of any size: nothing here is line-length limited. An event
whose data is empty (`data:` alone) is dispatched with empty data, as the spec says; the client
skips it.
"""

from dataclasses import dataclass

_LF = b"\n"
_CR = b"\r"
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event: `data` is the data lines joined with LF, as bytes."""

    data: bytes
    event: str = "message"


class SSEParser:
    """Feed bytes, get events. One parser per response."""

    __slots__ = ("_data", "_event", "_head", "_partial", "_skip_lf")

    def __init__(self) -> None:
        # The stream's first bytes until it is known whether they open with a byte-order mark.
        self._head: bytes | None = b""
        self._partial: list[bytes] = []
        self._data: list[bytes] = []
        self._event = ""
        # A CR ending one read may be the first half of a CRLF; the LF opening the next read is then dropped.
        self._skip_lf = False

    def _normalise(self, chunk: bytes) -> bytes | None:
        """The rare cases, off the common path: the stream's opening bytes without a byte-order mark
        (None while they cannot be told yet), and CR or CRLF line ends as LF."""
        if self._head is not None:
            head = self._head + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return None
            self._head = None
            chunk = head[len(_BOM):] if head.startswith(_BOM) else head
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == _LF:
                chunk = chunk[1:]
        if _CR in chunk:
            self._skip_lf = chunk.endswith(_CR)
            chunk = chunk.replace(b"\r\n", _LF).replace(_CR, _LF)
        return chunk

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._head is not None or self._skip_lf or _CR in chunk:
            normal = self._normalise(chunk)
            if normal is None:
                return []
            chunk = normal
        if _LF not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        lines = chunk.split(_LF)
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
        tail = lines.pop()
        self._partial = [tail] if tail else []
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(SSEEvent(_LF.join(data), self._event or "message"))
                    data = self._data = []
                self._event = ""
            elif line[:6] == b"data: ":
                data.append(line[6:])  # the common case, without the general field split
            else:
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # `id` and `retry` steer reconnection, which a load probe never does: ignored like unknown fields.

    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a stream cut mid-event)."""
        return bool(self._partial or self._data or self._head)
