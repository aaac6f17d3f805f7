"""A run's configuration: the one typed source of every setting.

`Config` is built directly (the Python API), from the command line (`cli.py` generates every
option from the fields below: flag, help, unit, default) or from a JSON run file
(`Config.from_mapping`, the same names as the fields). Whatever the road, `validate()` checks it,
in one place, and reads the files it names. Each field carries its help text, unit and range in
its metadata (`Opt`); the run file's JSON schema is generated from them (`schema.py`).
"""

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args, get_type_hints
from urllib.parse import urlsplit

from classroom_probe.errors import BadInput
from classroom_probe.inputs import KIB, MIB, read_json, read_text
from classroom_probe.prompts import Prompt, builtin_prompts, load_prompts
from classroom_probe.thresholds import PROFILES, Thresholds, apply_overrides, overrides

Api = Literal["chat", "completions", "ollama"]
Mode = Literal["classroom", "batch", "rate", "ramp"]
GpuMode = Literal["auto", "nvml", "smi", "off"]
ProfileName = Literal["classroom", "lab", "ollama"]

APIS: tuple[str, ...] = get_args(Api)
MODES: tuple[str, ...] = get_args(Mode)
GPU_MODES: tuple[str, ...] = get_args(GpuMode)
MAX_STREAMS = 100_000
MAX_REQUESTS = 10_000_000
MAX_WORKERS = 256
WEEK_S = 7 * 24 * 3600.0
DEFAULT_DURATION_S = 60.0
RUN_FILE_MAX_BYTES = MIB
API_KEY_MAX_BYTES = 64 * KIB


class RampSettings(TypedDict):
    start: int
    step: int
    max: int
    step_duration_s: float


class ConfigRecord(TypedDict):
    """The settings as the report records them (the API key never; header names only)."""

    base_url: str
    api: str
    model: str
    mode: str
    api_key_set: bool
    header_names: list[str]
    students: int
    duration_s: float | None
    warmup_s: float
    think_min_s: float
    think_max_s: float
    seed: int
    requests: int | None
    concurrency: int | None
    rate_rps: float | None
    poisson: bool
    ramp: RampSettings
    max_tokens: int
    ignore_eos: bool
    prompts: int
    prompts_file: str | None
    profile: str
    thresholds: dict[str, float | int | None]
    threshold_overrides: dict[str, float | int | None]
    metrics_url: str | None
    gpu: str
    connect_timeout_s: float
    read_timeout_s: float
    drain_timeout_s: float
    batch_time_limit_s: float | None
    continuous_usage: bool


@dataclass(frozen=True, slots=True)
class Opt:
    """How a setting is offered and checked. `runfile`: settable in the run file and on the command line."""

    help: str
    unit: str = ""
    flag: str = ""  # command-line flag; empty: --<name with dashes>
    runfile: bool = True
    cli: bool = True
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # strictly greater than `minimum`
    metavar: str = ""
    default_text: str = ""  # the default as words, where it depends on the mode


def _m(help_text: str, **kw: Any) -> dict[str, Opt]:
    """A field's metadata: how the setting is offered and checked."""
    return {"opt": Opt(help_text, **kw)}


@dataclass(slots=True)
class Config:
    """Everything one run needs. Build it directly, from the CLI or a run file; call `validate()`."""

    base_url: str = field(metadata=_m(
        "the server's root URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted)",
        metavar="URL"))
    model: str = field(metadata=_m(
        "the model's name as the server lists it",
        metavar="NAME"))
    max_tokens: int = field(metadata=_m(
        "output tokens asked for per request (a prompt's own max_tokens wins)",
        unit="tokens", minimum=1, maximum=1_000_000, metavar="N"))
    report_dir: Path | None = field(default=None, metadata=_m(
        "folder for report.json, report.md, report.html and checks.txt; created if missing, checked for "
        "writing before the load starts (the Python API writes nothing when it is unset)",
        metavar="DIR"))
    api: Api = field(default="chat", metadata=_m(
        "the API to load: OpenAI chat or completions (vLLM, gateways, Ollama's /v1) or Ollama's native "
        "/api/generate"))
    mode: Mode = field(default="classroom", metadata=_m(
        "the load: classroom (students ask, read, think, ask again), batch (N requests at a fixed "
        "concurrency), rate (open-loop arrivals), ramp (classroom steps of growing size until the SLO breaks)"))
    api_key: str | None = field(default=None, metadata=_m(
        "API key (Python API only; the command line and run file read api_key_file so the key never shows in "
        "a process list)",
        runfile=False, cli=False))
    api_key_file: Path | None = field(default=None, metadata=_m(
        "file holding the API key, sent as a Bearer token",
        metavar="PATH"))
    headers: dict[str, str] = field(default_factory=dict, metadata=_m(
        'extra HTTP header "Name: value" (repeat the option; in the run file an object of names to values)',
        flag="--header", metavar='"NAME: VALUE"'))
    students: int = field(default=24, metadata=_m(
        "students in the class (classroom mode)",
        unit="students", minimum=1, maximum=MAX_STREAMS, metavar="N"))
    duration: float | None = field(default=None, metadata=_m(
        "measured time after the warm-up (classroom, rate); in batch mode a cap on the time spent issuing",
        unit="s", minimum=0, above_minimum=True, maximum=WEEK_S, default_text="60 s; batch: no cap", metavar="S"))
    warmup: float = field(default=5.0, metadata=_m(
        "warm-up before measuring; its requests are checked for failures but left out of latency and speed "
        "figures",
        unit="s", minimum=0, maximum=WEEK_S, metavar="S"))
    think_min: float = field(default=1.0, metadata=_m(
        "shortest think time of a student between answer and next question",
        unit="s", minimum=0, maximum=3600, metavar="S"))
    think_max: float = field(default=3.0, metadata=_m(
        "longest think time (each think time is uniform between min and max)",
        unit="s", minimum=0, maximum=3600, metavar="S"))
    seed: int = field(default=0, metadata=_m(
        "seed of every random choice (think times, prompts, Poisson gaps)",
        minimum=0, maximum=2**63 - 1, metavar="N"))
    requests: int | None = field(default=None, metadata=_m(
        "requests to send (batch mode, required there)",
        unit="requests", minimum=1, maximum=MAX_REQUESTS, metavar="N"))
    concurrency: int | None = field(default=None, metadata=_m(
        "batch: requests in parallel; rate: most requests in flight",
        unit="requests", minimum=1, maximum=MAX_STREAMS, default_text="batch 64, rate 1024", metavar="N"))
    rate: float | None = field(default=None, metadata=_m(
        "arrivals per second (rate mode, required there)",
        unit="requests/s", minimum=0, above_minimum=True, maximum=1_000_000, metavar="R"))
    poisson: bool = field(default=False, metadata=_m(
        "rate mode: exponential gaps between arrivals (seeded) instead of constant"))
    ramp_start: int = field(default=1, metadata=_m(
        "ramp mode: students in the first step",
        unit="students", minimum=1, maximum=MAX_STREAMS, metavar="N"))
    ramp_step: int = field(default=4, metadata=_m(
        "ramp mode: students added per step",
        unit="students", minimum=1, maximum=MAX_STREAMS, metavar="N"))
    ramp_max: int = field(default=64, metadata=_m(
        "ramp mode: students in the last step (always included)",
        unit="students", minimum=1, maximum=MAX_STREAMS, metavar="N"))
    ramp_step_duration: float = field(default=30.0, metadata=_m(
        "ramp mode: measured time of each step (each has its own warm-up)",
        unit="s", minimum=0, above_minimum=True, maximum=WEEK_S, metavar="S"))
    ignore_eos: bool = field(default=False, metadata=_m(
        "ask vLLM to generate max_tokens whatever the model says (ignore_eos)"))
    prompts_file: Path | None = field(default=None, metadata=_m(
        'JSONL prompts, one {"prompt": ...} or {"messages": [...]} a line, optionally with "max_tokens"',
        flag="--prompts", default_text="a built-in classroom set", metavar="FILE.jsonl"))
    prompts: list[Prompt] = field(default_factory=builtin_prompts, metadata=_m(
        "prompts (Python API; the command line and run file use prompts_file)",
        runfile=False, cli=False))
    profile: ProfileName = field(default="classroom", metadata=_m(
        "named set of thresholds: classroom (a GPU box serving a class), lab (the CPU lab engine), ollama "
        "(the before measurement)"))
    thresholds_file: Path | None = field(default=None, metadata=_m(
        "JSON object overriding the profile's thresholds (null disables a check)",
        flag="--thresholds", metavar="FILE.json"))
    thresholds: Thresholds | None = field(default=None, metadata=_m(
        "overrides of the profile's thresholds: an object of threshold names to limits, null disables a check"
        " (run file); a Thresholds (Python API)",
        cli=False))
    metrics_url: str | None = field(default="auto", metadata=_m(
        "the server's Prometheus /metrics: a URL, auto (<base>/metrics; off for ollama) or off",
        metavar="URL|auto|off"))
    gpu: GpuMode = field(default="auto", metadata=_m(
        "GPU sampling: auto (NVML, else nvidia-smi, else recorded as absent), nvml, smi, or off (GPU checks "
        "skipped)"))
    records: bool = field(default=False, metadata=_m(
        "also write records.jsonl, one line per request"))
    quiet: bool = field(default=False, metadata=_m(
        "print exactly one JSON line on stdout and nothing on stderr unless the input is bad"))
    status_file: Path | None = field(default=None, metadata=_m(
        "JSON file replaced atomically once a second with the run's phase, totals and time left, and at the "
        "end its verdict (for callers that poll)",
        metavar="FILE.json"))
    workers: int | None = field(default=None, metadata=_m(
        "load processes, each with its own event loop and connections",
        minimum=1, maximum=MAX_WORKERS, default_text="from the CPU cores and the expected token rate", metavar="N"))
    connect_timeout: float = field(default=5.0, metadata=_m(
        "time allowed to connect",
        unit="s", minimum=0, above_minimum=True, maximum=86_400, metavar="S"))
    read_timeout: float = field(default=60.0, metadata=_m(
        "longest silence allowed within an answer (no byte at all)",
        unit="s", minimum=0, above_minimum=True, maximum=86_400, metavar="S"))
    drain_timeout: float = field(default=30.0, metadata=_m(
        "after the load, how long answers still running may take before they are cancelled and counted as "
        "drain_timeout",
        unit="s", minimum=0, maximum=86_400, metavar="S"))
    continuous_usage: bool = field(default=True, metadata=_m(
        "ask OpenAI-compatible servers for token usage on every chunk (vLLM; gives per-token ITL); off for "
        "gateways that reject unknown fields"))
    request_id_header: str | None = field(default=None, metadata=_m(
        "send each request's index in this header (for servers that log their own times)",
        metavar="NAME"))
    # Python-API-only settings.
    batch_time_limit: float | None = field(default=None, metadata=_m(
        "batch mode: the time cap (Python API name of duration in batch mode)",
        unit="s", runfile=False, cli=False, minimum=0, above_minimum=True, maximum=WEEK_S))
    progress: bool = field(default=False, metadata=_m(
        "echo the live progress line on stderr (the command line sets it unless quiet)",
        runfile=False, cli=False))
    _resolved: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A profile's thresholds unless the caller gave others (recorded as overrides of that profile).
        if self.thresholds is None and self.profile in PROFILES:
            self.thresholds = PROFILES[self.profile]

    # --- validation ----------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise BadInput naming the first invalid setting; read the files the settings name (once)."""
        for f in fields(self):
            opt = f.metadata.get("opt")
            if opt is not None:
                _check_value(flag(f.name), getattr(self, f.name), _HINTS[f.name], opt)
        self._validate_rules()
        if not self._resolved:
            self._read_files()
            self._resolved = True
        if self.mode == "batch":
            if self.batch_time_limit is None:
                self.batch_time_limit = self.duration
            elif self.duration is None:
                self.duration = self.batch_time_limit
        elif self.duration is None:
            self.duration = DEFAULT_DURATION_S

    def _validate_rules(self) -> None:
        self._validate_target()
        if self.think_max < self.think_min:
            raise BadInput("--think-max", "must be >= --think-min")
        if self.ramp_max < self.ramp_start:
            raise BadInput("--ramp-max", "must be >= --ramp-start")
        if self.mode == "batch" and self.requests is None:
            raise BadInput("--requests", "required with --mode batch")
        if self.mode == "rate":
            if self.rate is None:
                raise BadInput("--rate", "required with --mode rate")
            span = self.warmup + (self.duration if self.duration is not None else DEFAULT_DURATION_S)
            if self.rate * span > MAX_REQUESTS:
                raise BadInput("--rate", f"rate x (warmup + duration) exceeds {MAX_REQUESTS:,} requests")
        if not self.prompts:
            raise BadInput("--prompts", "no prompts")
        if self.thresholds is None:
            raise BadInput("--profile", f"choose one of {', '.join(PROFILES)}")

    def _validate_target(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise BadInput("--base-url", f"needs http:// or https:// and a host, got {self.base_url!r}")
        if not self.model.strip():
            raise BadInput("--model", "must not be empty")
        for name, value in self.headers.items():
            if not name or any(c in name for c in " :\r\n") or any(c in value for c in "\r\n"):
                raise BadInput("--header", f"invalid header {name!r}")
        if self.request_id_header is not None and (not self.request_id_header or
                                                   any(c in self.request_id_header for c in " :\r\n")):
            raise BadInput("--request-id-header", "must be a header name")
        if self.metrics_url not in (None, "auto", "off") and not str(self.metrics_url).startswith(
                ("http://", "https://")):
            raise BadInput("--metrics-url", "must be an http(s) URL, auto or off")

    def _read_files(self) -> None:
        if self.api_key_file is not None:
            key = read_text(self.api_key_file, "--api-key-file", API_KEY_MAX_BYTES).strip()
            if not key:
                raise BadInput("--api-key-file", f"{self.api_key_file} is empty")
            if any(c in key for c in "\r\n"):
                raise BadInput("--api-key-file", f"{self.api_key_file} holds more than one line")
            self.api_key = key
        if self.prompts_file is not None:
            self.prompts = load_prompts(self.prompts_file, "--prompts")
        if self.thresholds_file is not None:
            assert self.thresholds is not None  # checked in _validate_rules
            self.thresholds = apply_overrides(self.thresholds, read_json(self.thresholds_file, "--thresholds", MIB))

    # --- derived settings ----------------------------------------------------------------------------------

    @property
    def limits(self) -> Thresholds:
        """The thresholds in effect: the profile's, with any overrides."""
        return self.thresholds if self.thresholds is not None else PROFILES[self.profile]

    @property
    def threshold_overrides(self) -> dict[str, float | int | None]:
        return overrides(self.profile, self.limits) if self.profile in PROFILES else {}

    @property
    def load_duration(self) -> float:
        return self.duration if self.duration is not None else DEFAULT_DURATION_S

    @property
    def max_streams(self) -> int:
        """Most requests in flight at once, for the connection pool and the fd limit."""
        if self.mode == "classroom":
            return self.students
        if self.mode == "ramp":
            return self.ramp_max
        if self.mode == "batch":
            return min(self.batch_concurrency, self.requests or self.batch_concurrency)
        return self.rate_concurrency

    @property
    def streams_option(self) -> str:
        """The option that sets `max_streams` (named when the fd limit is too low)."""
        return {"classroom": "--students", "ramp": "--ramp-max"}.get(self.mode, "--concurrency")

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

    # --- the run file --------------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, obj: object, source: str = "run file") -> "Config":
        """A Config from a run file's JSON object (keys are the field names; see `RUN_FILE_FIELDS`)."""
        if not isinstance(obj, dict):
            raise BadInput(source, "must be a JSON object")
        kwargs: dict[str, Any] = {}
        for key, raw in obj.items():
            if key not in RUN_FILE_FIELDS:
                raise BadInput(str(key), f"unknown key in {source}; known keys: {', '.join(RUN_FILE_FIELDS)}")
            kwargs[key] = _from_json(key, raw)
        overrides_obj = kwargs.pop("thresholds", None)
        for key in REQUIRED_FIELDS:
            if key not in kwargs:
                raise BadInput(flag(key), f"required (key {key} in {source}, or {flag(key)})")
        profile = kwargs.get("profile", "classroom")
        if profile not in PROFILES:
            raise BadInput("--profile", f"choose one of {', '.join(PROFILES)}")
        if overrides_obj is not None:
            kwargs["thresholds"] = apply_overrides(PROFILES[profile], overrides_obj, "thresholds")
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: Path, option: str = "--config") -> "Config":
        obj = read_json(path, option, RUN_FILE_MAX_BYTES)
        if not isinstance(obj, dict):
            raise BadInput(option, f"{path} must hold a JSON object")
        return cls.from_mapping(obj, str(path))

    def to_runfile(self) -> dict[str, object]:
        """The settings as a run file would hold them (the inverse of `from_mapping`)."""
        out: dict[str, object] = {}
        for name in RUN_FILE_FIELDS:
            value = getattr(self, name)
            if name == "thresholds":
                value = self.threshold_overrides
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[name] = value
        return out

    def to_json(self) -> ConfigRecord:
        """The configuration as recorded in the report (the API key never is; header names only)."""
        return {
            "base_url": self.base_url,
            "api": self.api,
            "model": self.model,
            "mode": self.mode,
            "api_key_set": self.api_key is not None,
            "header_names": sorted(self.headers),
            "students": self.students,
            "duration_s": self.load_duration if self.mode != "batch" else self.batch_time_limit,
            "warmup_s": self.warmup,
            "think_min_s": self.think_min,
            "think_max_s": self.think_max,
            "seed": self.seed,
            "requests": self.requests,
            "concurrency": self.max_streams if self.mode in ("batch", "rate") else self.concurrency,
            "rate_rps": self.rate,
            "poisson": self.poisson,
            "ramp": {"start": self.ramp_start, "step": self.ramp_step, "max": self.ramp_max,
                     "step_duration_s": self.ramp_step_duration},
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
            "prompts": len(self.prompts),
            "prompts_file": None if self.prompts_file is None else str(self.prompts_file),
            "profile": self.profile,
            "thresholds": self.limits.to_json(),
            "threshold_overrides": self.threshold_overrides,
            "metrics_url": self.resolved_metrics_url,
            "gpu": self.gpu,
            "connect_timeout_s": self.connect_timeout,
            "read_timeout_s": self.read_timeout,
            "drain_timeout_s": self.drain_timeout,
            "batch_time_limit_s": self.batch_time_limit,
            "continuous_usage": self.continuous_usage,
        }


_HINTS: dict[str, Any] = get_type_hints(Config)
OPTIONS: dict[str, Opt] = {f.name: f.metadata["opt"] for f in fields(Config) if "opt" in f.metadata}
RUN_FILE_FIELDS: tuple[str, ...] = tuple(name for name, o in OPTIONS.items() if o.runfile)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Config)
                                         if f.default is MISSING and f.default_factory is MISSING)


def flag(name: str) -> str:
    """The command-line flag of a field (also how errors name it)."""
    opt = OPTIONS.get(name)
    return (opt.flag if opt is not None and opt.flag else None) or "--" + name.replace("_", "-")


def field_hint(name: str) -> Any:
    return _HINTS[name]


def default_of(name: str) -> Any:
    f = next(f for f in fields(Config) if f.name == name)
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def _check_value(name: str, value: object, hint: Any, opt: Opt) -> None:
    problem = _type_problem(value, hint)
    if problem:
        raise BadInput(name, f"{problem}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = opt.minimum, opt.maximum
        if low is not None and (value <= low if opt.above_minimum else value < low):
            raise BadInput(name, _range_text(opt, value))
        if high is not None and value > high:
            raise BadInput(name, _range_text(opt, value))


def _range_text(opt: Opt, value: float) -> str:
    low = f"> {opt.minimum:g}" if opt.above_minimum else f">= {opt.minimum:g}"
    whole = isinstance(value, int)
    kind = "a whole number" if whole else "a number"
    if opt.minimum is not None and opt.maximum is not None and not opt.above_minimum and whole:
        return f"must be {kind} from {opt.minimum:g} to {opt.maximum:,.0f}, got {value!r}"
    high = f" and <= {opt.maximum:g}" if opt.maximum is not None else ""
    return f"must be {kind} {low}{high}, got {value!r}"


def _type_problem(value: object, hint: Any) -> str:  # noqa: PLR0911
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return ""
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
        args = get_args(hint)
    if getattr(hint, "__origin__", None) is Literal:
        return "" if value in args else f"must be one of {', '.join(map(str, args))}"
    if hint is bool:
        return "" if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return "" if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return "" if ok else "must be a finite number"
    if hint is str:
        return "" if isinstance(value, str) else "must be text"
    if hint is Path:
        return "" if isinstance(value, Path) and str(value) else "must be a path"
    if getattr(hint, "__origin__", None) is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        return "" if ok else "must map names to text"
    if getattr(hint, "__origin__", None) is list:
        return "" if isinstance(value, list) and all(isinstance(p, Prompt) for p in value) else "must be prompts"
    if hint is Thresholds:
        return "" if isinstance(value, Thresholds) else "must be Thresholds"
    return ""


def _from_json(key: str, raw: object) -> object:
    """A run-file value as the field's Python type (paths from strings; numbers as given)."""
    hint = _HINTS[key]
    args = get_args(hint)
    if raw is None:
        return None
    if Path in args or hint is Path:
        if not isinstance(raw, str) or not raw:
            raise BadInput(flag(key), f"must be a path (text), got {raw!r}")
        return Path(raw)
    if key == "thresholds":
        return raw  # applied over the profile by the caller
    if key == "headers" and not isinstance(raw, dict):
        raise BadInput("--header", "must be an object of header names to values")
    if (hint is float or float in args) and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw
