"""Splits a vLLM start-up log into phases: where the time from launch to a healthy server goes.

The supervisor stamps every line with the seconds since launch (`[+  12.34s] `); older logs carry only
vLLM's own second-resolution timestamps (`INFO 11-23 07:14:40`), and then times count from the first
log line. A phase ends at the first line of its milestone, searched in start-up order; a milestone a
start does not reach (e.g. torch.compile with enforce_eager) leaves its time to the next phase.
vLLM's own duration lines (`... took 31.01 s`) are kept beside, as `reported`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

STAMP = re.compile(r"^\[\+\s*(\d+(?:\.\d+)?)s\] ")
VLLM_TIME = re.compile(r"\b(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) +(\d\d-\d\d \d\d:\d\d:\d\d)(?:[.,](\d{1,6}))?\b")


@dataclass(frozen=True)
class Milestone:
    key: str
    label: str  # the phase that ends at this milestone
    pattern: re.Pattern[str] | None  # None: the first log line


MILESTONES = (
    Milestone("first_log", "Python start and imports until vLLM's first log line", None),
    Milestone("engine_core", "API server: config, tokenizer, engine process start",
              re.compile(r"Initializing a V1 LLM engine|Initializing an LLM engine")),
    Milestone("load_start", "Workers: process start, torch.distributed and NCCL init",
              re.compile(r"Loading model from scratch|Starting to load model")),
    Milestone("load_done", "Weights / model load", re.compile(r"Model loading took|Initializing model took")),
    Milestone("compile_done", "torch.compile: Dynamo, then Inductor or its cache",
              re.compile(r"torch\.compile (?:takes|took) [\d.]+ s in total")),
    Milestone("kv_done", "Memory profiling and KV cache init", re.compile(r"KV cache size:")),
    Milestone("graphs_done", "CUDA graph capture", re.compile(r"Graph capturing finished")),
    Milestone("engine_ready", "Engine warm-up until the engine core is ready",
              re.compile(r"init engine \(profile, create kv cache, warmup model\) took")),
    Milestone("api_up", "API server up", re.compile(r"Application startup complete")),
)
HEALTHY_LABEL = "Until the first /health 200"

REPORTED = {
    "model_load_s": re.compile(r"Model loading took [\d.]+ GiB(?: memory)? and ([\d.]+) s"
                               r"|Initializing model took ([\d.]+) s"),
    "dynamo_transform_s": re.compile(r"Dynamo bytecode transform time: ([\d.]+) s"),
    "graph_compile_s": re.compile(r"Compiling a graph for .*? takes ([\d.]+) s"),
    "graph_cache_load_s": re.compile(r"Directly load the compiled graph\(s\) for .*? took ([\d.]+) s"),
    "torch_compile_total_s": re.compile(r"torch\.compile (?:takes|took) ([\d.]+) s in total"),
    "profiling_warmup_s": re.compile(r"Initial profiling/warmup run took ([\d.]+) s"),
    "cuda_graphs_s": re.compile(r"Graph capturing finished in ([\d.]+) secs?"),
    "init_engine_s": re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
}
CACHE_HIT = re.compile(r"Directly load the compiled graph|[Ll]oad(?:ed|ing)? (?:the )?AOT compiled")
CACHE_MISS = re.compile(r"Compiling a graph for|saved AOT compiled function")


@dataclass(frozen=True)
class Phase:
    key: str
    label: str
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return round(self.end_s - self.start_s, 2)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": self.seconds}


@dataclass(frozen=True)
class Startup:
    clock: str  # "launch" (stamped log) | "first log line" (vLLM timestamps only) | "none"
    phases: list[Phase] = field(default_factory=list)
    reported: dict[str, float] = field(default_factory=dict)
    compile_cache: str = "n/a"  # hit | miss | n/a
    healthy_after_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"clock": self.clock, "phases": [p.to_dict() for p in self.phases], "reported": self.reported,
                "compile_cache": self.compile_cache, "healthy_after_s": self.healthy_after_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Startup:
        phases = [Phase(str(p["key"]), str(p["label"]), float(p["start_s"]), float(p["end_s"]))
                  for p in d.get("phases") or []]
        healthy = d.get("healthy_after_s")
        reported = {str(k): float(v) for k, v in (d.get("reported") or {}).items()}
        return cls(str(d.get("clock", "none")), phases, reported, str(d.get("compile_cache", "n/a")),
                   None if healthy is None else float(healthy))


def _line_times(lines: list[str]) -> tuple[list[float | None], str]:
    stamped = [STAMP.match(line) for line in lines]
    if any(stamped):
        times: list[float | None] = []
        last: float | None = None
        for match in stamped:
            last = float(match.group(1)) if match else last
            times.append(last)
        return times, "launch"
    first: datetime | None = None
    times, last = [], None
    for line in lines:
        match = VLLM_TIME.search(line)
        if match:
            # Month-day only: the year is irrelevant to differences within one start.
            moment = datetime.strptime("2000-" + match.group(1), "%Y-%m-%d %H:%M:%S")
            if match.group(2):
                moment = moment.replace(microsecond=int(match.group(2).ljust(6, "0")))
            first = first or moment
            last = (moment - first).total_seconds()
        times.append(last)
    return times, ("first log line" if first else "none")


def _body(line: str) -> str:
    match = STAMP.match(line)
    return line[match.end():] if match else line


def parse_startup(text: str, healthy_after_s: float | None = None) -> Startup:
    lines = text.splitlines()
    times, clock = _line_times(lines)
    bodies = [_body(line) for line in lines]
    found: list[tuple[Milestone, float]] = []
    index = 0
    for milestone in MILESTONES:
        for i in range(index, len(lines)):
            if times[i] is None:
                continue
            if milestone.pattern is None or milestone.pattern.search(bodies[i]):
                found.append((milestone, float(times[i] or 0.0)))
                index = i
                break
    phases: list[Phase] = []
    start = 0.0 if clock == "launch" else None
    for milestone, at in found:
        if start is not None:
            phases.append(Phase(milestone.key, milestone.label, start, at))
        start = at
    if healthy_after_s is not None and clock == "launch" and start is not None and healthy_after_s >= start:
        phases.append(Phase("healthy", HEALTHY_LABEL, start, healthy_after_s))
    reported: dict[str, float] = {}
    for key, pattern in REPORTED.items():
        hit = next((m for m in map(pattern.search, bodies) if m), None)
        if hit:
            reported[key] = float(next(g for g in hit.groups() if g is not None))
    cache = "hit" if any(map(CACHE_HIT.search, bodies)) else "miss" if any(map(CACHE_MISS.search, bodies)) else "n/a"
    return Startup(clock, phases, reported, cache, healthy_after_s)
