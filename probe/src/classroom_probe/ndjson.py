"""Incremental newline-delimited JSON splitter (Ollama's native streaming format)."""


class NDJSONSplitter:
    """Feed bytes, get complete non-blank lines (without their line end)."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
        tail = lines.pop()
        self._partial = [tail] if tail else []
        return [line for line in (raw.strip() for raw in lines) if line]

    def pending(self) -> bytes:
        """The unterminated last line, if any (a final object without a newline still counts)."""
        return b"".join(self._partial).strip()
