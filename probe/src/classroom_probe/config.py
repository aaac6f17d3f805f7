"""A run's configuration, validated before anything touches the network."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from classroom_probe.errors import BadInput
from classroom_probe.prompts import Prompt, builtin_prompts
from classroom_probe.thresholds import PROFILES, Thresholds

Api = Literal["chat", "completions", "ollama"]
Mode = Literal["classroom", "batch", "rate", "ramp"]
GpuMode = Literal["auto", "nvml", "smi", "off"]

APIS: tuple[str, ...] = ("chat", "completions", "ollama")
MODES: tuple[str, ...] = ("classroom", "batch", "rate", "ramp")
GPU_MODES: tuple[str, ...] = ("auto", "nvml", "smi", "off")
MAX_STREAMS = 100_000
MAX_REQUESTS = 10_000_000


@dataclass(slots=True)
class Config:
    """Everything one run needs. Build it directly (the Python API) or from the CLI; call `validate()`."""

    base_url: str
    model: str
    max_tokens: int
    report_dir: Path | None = None
    api: Api = "chat"
    mode: Mode = "classroom"
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    students: int = 24
    duration: float = 60.0
    warmup: float = 5.0
    think_min: float = 1.0
    think_max: float = 3.0
    seed: int = 0
    requests: int | None = None
    concurrency: int | None = None
    rate: float | None = None
    poisson: bool = False
    ramp_start: int = 1
    ramp_step: int = 4
    ramp_max: int = 64
    ramp_step_duration: float = 30.0
    ignore_eos: bool = False
    prompts: list[Prompt] = field(default_factory=builtin_prompts)
    profile: str = "classroom"
    thresholds: Thresholds = field(default_factory=lambda: PROFILES["classroom"])
    metrics_url: str | None = "auto"
    gpu: GpuMode = "auto"
    records: bool = False
    quiet: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    drain_timeout: float = 30.0
    # Batch mode: stop issuing new requests after this many seconds (None: only the count bounds it).
    batch_time_limit: float | None = None
    # Whether to ask OpenAI-compatible servers for usage on every chunk (vLLM); off for strict gateways.
    continuous_usage: bool = True
    # Send each request's index in this header (benchmarks match client and server times by it).
    request_id_header: str | None = None
    # Echo the live progress line (CLI only; the Python API leaves it off).
    progress: bool = False

    def validate(self) -> None:
        """Raise BadInput naming the first invalid field."""
        self._validate_choices()
        self._validate_values()
        self._validate_mode()

    def _validate_choices(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise BadInput("--base-url", f"needs http:// or https:// and a host, got {self.base_url!r}")
        if self.api not in APIS:
            raise BadInput("--api", f"choose one of {list(APIS)}")
        if self.mode not in MODES:
            raise BadInput("--mode", f"choose one of {list(MODES)}")
        if self.gpu not in GPU_MODES:
            raise BadInput("--gpu", f"choose one of {list(GPU_MODES)}")
        if not self.model:
            raise BadInput("--model", "must not be empty")
        if self.profile not in PROFILES:
            raise BadInput("--profile", f"choose one of {sorted(PROFILES)}")

    def _validate_values(self) -> None:
        _positive_int("--max-tokens", self.max_tokens, 1_000_000)
        _non_negative("--warmup", self.warmup)
        _positive("--connect-timeout", self.connect_timeout)
        _positive("--read-timeout", self.read_timeout)
        _non_negative("--drain-timeout", self.drain_timeout)
        _non_negative("--think-min", self.think_min)
        _non_negative("--think-max", self.think_max)
        if self.think_max < self.think_min:
            raise BadInput("--think-max", "must be >= --think-min")
        for name, value in self.headers.items():
            if not name or any(c in name for c in " :\r\n") or any(c in value for c in "\r\n"):
                raise BadInput("--header", f"invalid header {name!r}")
        if not self.prompts:
            raise BadInput("--prompts", "no prompts")

    def _validate_mode(self) -> None:
        if self.mode in ("classroom", "rate"):
            _positive("--duration", self.duration)
        if self.mode == "classroom":
            _positive_int("--students", self.students, MAX_STREAMS)
        elif self.mode == "batch":
            if self.requests is None:
                raise BadInput("--requests", "required with --mode batch")
            _positive_int("--requests", self.requests, MAX_REQUESTS)
            if self.concurrency is not None:
                _positive_int("--concurrency", self.concurrency, MAX_STREAMS)
            if self.batch_time_limit is not None:
                _positive("--duration", self.batch_time_limit)
        elif self.mode == "rate":
            if self.rate is None:
                raise BadInput("--rate", "required with --mode rate")
            _positive("--rate", self.rate)
            if self.rate * (self.warmup + self.duration) > MAX_REQUESTS:
                raise BadInput("--rate", f"rate x (warmup + duration) exceeds {MAX_REQUESTS} requests")
            if self.concurrency is not None:
                _positive_int("--concurrency", self.concurrency, MAX_STREAMS)
        elif self.mode == "ramp":
            _positive_int("--ramp-start", self.ramp_start, MAX_STREAMS)
            _positive_int("--ramp-step", self.ramp_step, MAX_STREAMS)
            _positive_int("--ramp-max", self.ramp_max, MAX_STREAMS)
            if self.ramp_max < self.ramp_start:
                raise BadInput("--ramp-max", "must be >= --ramp-start")
            _positive("--ramp-step-duration", self.ramp_step_duration)

    @property
    def max_streams(self) -> int:
        """Most requests in flight at once, for the connection pool and the fd limit."""
        if self.mode == "classroom":
            return self.students
        if self.mode == "ramp":
            return self.ramp_max
        if self.mode == "batch":
            return self.batch_concurrency
        return self.rate_concurrency

    @property
    def batch_concurrency(self) -> int:
        return self.concurrency or 64

    @property
    def rate_concurrency(self) -> int:
        return self.concurrency or 1024

    @property
    def resolved_metrics_url(self) -> str | None:
        if self.metrics_url in (None, "off"):
            return None
        if self.metrics_url == "auto":
            if self.api == "ollama":
                return None
            return self.base_url.rstrip("/").removesuffix("/v1") + "/metrics"
        return self.metrics_url

    def to_json(self) -> dict[str, object]:
        """The configuration as recorded in the report (the API key never is)."""
        return {
            "base_url": self.base_url,
            "api": self.api,
            "model": self.model,
            "mode": self.mode,
            "api_key_set": self.api_key is not None,
            "header_names": sorted(self.headers),
            "students": self.students,
            "duration_s": self.duration,
            "warmup_s": self.warmup,
            "think_min_s": self.think_min,
            "think_max_s": self.think_max,
            "seed": self.seed,
            "requests": self.requests,
            "concurrency": self.max_streams if self.mode in ("batch", "rate") else self.concurrency,
            "rate_rps": self.rate,
            "poisson": self.poisson,
            "ramp": {
                "start": self.ramp_start,
                "step": self.ramp_step,
                "max": self.ramp_max,
                "step_duration_s": self.ramp_step_duration,
            },
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
            "prompts": len(self.prompts),
            "profile": self.profile,
            "thresholds": self.thresholds.to_json(),
            "metrics_url": self.resolved_metrics_url,
            "gpu": self.gpu,
            "connect_timeout_s": self.connect_timeout,
            "read_timeout_s": self.read_timeout,
            "drain_timeout_s": self.drain_timeout,
            "batch_time_limit_s": self.batch_time_limit,
            "continuous_usage": self.continuous_usage,
        }


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise BadInput(name, f"must be a number > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise BadInput(name, f"must be a number >= 0, got {value!r}")


def _positive_int(name: str, value: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > limit:
        raise BadInput(name, f"must be a whole number from 1 to {limit}, got {value!r}")
