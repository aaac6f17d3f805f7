"""What one request produced (outcome, timings, tokens), and the running totals over all requests."""

from dataclasses import dataclass, field
from enum import StrEnum


class FailureKind(StrEnum):
    """How a request failed. HTTP errors keep their status number in `RequestRecord.http_status`."""

    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_ERROR = "connect_error"
    READ_TIMEOUT = "read_timeout"
    HTTP_STATUS = "http_status"
    ERROR_BEFORE_FIRST_TOKEN = "error_before_first_token"
    ERROR_AFTER_TOKENS = "error_after_tokens"
    CLOSED_WITHOUT_DONE = "closed_without_done"
    MALFORMED_EVENT = "malformed_event"
    EMPTY_OUTPUT = "empty_output"
    DRAIN_TIMEOUT = "drain_timeout"
    CLIENT_ERROR = "client_error"  # an exception the probe could not classify (reported, never a crash)


# Failures the probe itself may cause or hasten (its own deadline, its own exception); every other kind
# is the server's doing and fails a run whatever the probe's health.
PROBE_SIDE_FAILURES = frozenset({FailureKind.DRAIN_TIMEOUT.value, FailureKind.CLIENT_ERROR.value})


def server_caused(failures: dict[str, int]) -> int:
    """Failed requests the server caused, out of failures counted by kind."""
    return sum(n for k, n in failures.items() if k not in PROBE_SIDE_FAILURES)


@dataclass(slots=True)
class RequestRecord:
    """One request. Times are nanoseconds from `time.perf_counter_ns()`; `start_ns` is stamped
    immediately before the request is handed to aiohttp."""

    index: int
    student: int | None
    measured: bool
    start_ns: int = 0
    first_token_ns: int | None = None
    last_event_ns: int | None = None
    end_ns: int = 0
    chunks: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = True
    failure: FailureKind | None = None
    http_status: int | None = None
    error: str = ""
    # Gaps between consecutive content-bearing chunks (ns) and the tokens each later chunk carried
    # (0 where the server did not say). Kept only while the request is in flight.
    gaps_ns: list[int] = field(default_factory=list)
    gap_tokens: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def failure_key(self) -> str | None:
        """Key used in failure counts: the kind, or `http_<status>` for HTTP errors."""
        if self.failure is None:
            return None
        if self.failure is FailureKind.HTTP_STATUS:
            return f"http_{self.http_status}"
        return self.failure.value

    @property
    def ttft_ns(self) -> int | None:
        return None if self.first_token_ns is None else self.first_token_ns - self.start_ns

    @property
    def e2e_ns(self) -> int | None:
        return None if self.last_event_ns is None else self.last_event_ns - self.start_ns

    @property
    def tpot_ns(self) -> float | None:
        """(E2E - TTFT) / (output_tokens - 1), for requests with two or more tokens (vLLM's TPOT)."""
        ttft, e2e = self.ttft_ns, self.e2e_ns
        if ttft is None or e2e is None or self.output_tokens < 2:
            return None
        return (e2e - ttft) / (self.output_tokens - 1)

    def to_json(self, origin_ns: int) -> dict[str, object]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v / 1e6, 4)

        return {
            "index": self.index,
            "student": self.student,
            "measured": self.measured,
            "start_s": round((self.start_ns - origin_ns) / 1e9, 6),
            "ttft_ms": ms(self.ttft_ns),
            "e2e_ms": ms(self.e2e_ns),
            "tpot_ms": ms(self.tpot_ns),
            "itl_max_ms": ms(max(self.gaps_ns)) if self.gaps_ns else None,
            "chunks": self.chunks,
            "output_tokens": self.output_tokens,
            "tokens_estimated": self.tokens_estimated,
            "ok": self.ok,
            "failure": self.failure_key,
            "error": self.error[:300],
        }


class Live:
    """Running totals the progress line and the 1 Hz series read; updated on the hot path."""

    __slots__ = ("done", "failed", "failures", "inflight", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.done = 0
        self.failed = 0
        self.inflight = 0
        self.failures: dict[str, int] = {}

    def snapshot(self) -> "LiveSnapshot":
        return LiveSnapshot(self.tokens, self.done, self.failed, self.inflight, dict(self.failures))


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """Live totals at one moment (what a load process reports to the parent)."""

    tokens: int = 0
    done: int = 0
    failed: int = 0
    inflight: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: "LiveSnapshot") -> "LiveSnapshot":
        kinds = dict(self.failures)
        for k, n in other.failures.items():
            kinds[k] = kinds.get(k, 0) + n
        return LiveSnapshot(self.tokens + other.tokens, self.done + other.done, self.failed + other.failed,
                            self.inflight + other.inflight, kinds)
