#!/usr/bin/env python3
"""TEST STAND-IN for vLLM's OpenAI-compatible server (not vLLM; it serves no model; tests only).

Runs as a box's `vllm.service` where the engine is not what a test is about (the monitoring scenario: Prometheus,
node-exporter's systemd collector, the alert rules and the dashboard watch it as they watch vLLM). It serves:
  - the project's fake OpenAI server (fake_openai_server.py, copied beside this file): /v1/models,
    /v1/completions and /v1/chat/completions, streamed, behind the Bearer key in VLLM_API_KEY as vLLM's --api-key,
    and vLLM's open /health (200, empty);
  - vLLM's other open routes: /version ({"version": ...}) and /metrics.
The /metrics page is a /metrics page recorded from the real engine (--metrics-page, such as
tests/fixtures/vllm-metrics/0.32.0.txt), read at start: the same families, HELP, TYPE, label sets and histogram
buckets, in the same order, with model_name set to --model. Only the values are the stand-in's own:
  - what it serves moves them: running requests (and the KV cache share, as running over --max-num-seqs), prompt and
    generation tokens, finished requests by reason, and the per-request histograms (time to first token, every
    inter-token gap, end to end, prefill and decode, tokens and parameters), observed from its own streams;
  - each `*_created` series and process_start_time_seconds hold its start; the process_* gauges are read from /proc;
  - `*_info` series, vllm:engine_sleep_state and process_max_fds keep the recorded value (a state, not a count);
  - everything else (what a stand-in never does: preemptions, prefix-cache hits, rejections, HTTP middleware
    counters) is zero, as on an engine that just started.
Standard library only, so a bare Debian box's python3 runs it. Started by systemd; stops on SIGTERM or dies on
SIGKILL like any server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fake_openai_server as fake

# A sample line of the text exposition format: name, optional {labels}, value (no timestamps on vLLM's page).
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
KEEP_RECORDED = {"vllm:engine_sleep_state", "process_max_fds"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Series:
    """One sample line: its name, its labels in the recorded order (values as escaped in the text), its family."""

    name: str
    labels: list[tuple[str, str]]
    family: str
    kind: str
    recorded: float

    def label(self, key: str) -> str | None:
        return next((v for k, v in self.labels if k == key), None)

    def text(self) -> str:
        if not self.labels:
            return self.name
        return self.name + "{" + ",".join(f'{k}="{v}"' for k, v in self.labels) + "}"


@dataclass
class Page:
    """The recorded page as lines: comments kept as text, samples as Series whose values live in `values`."""

    lines: list[str | Series] = field(default_factory=list)
    values: dict[int, float] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=dict)

    def add(self, line: str | Series) -> None:
        if isinstance(line, Series):
            self.by_name.setdefault(line.name, []).append(len(self.lines))
        self.lines.append(line)

    def series(self, name: str, **labels: str) -> list[tuple[int, Series]]:
        found = [(i, self.lines[i]) for i in self.by_name.get(name, [])]
        return [(i, s) for i, s in found if isinstance(s, Series) and all(s.label(k) == v for k, v in labels.items())]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_page(text: str, model: str) -> Page:
    """The recorded page, with model_name set to the served model. Comments other than HELP and TYPE (the
    recording's own note) are left out."""
    page = Page()
    family, kind = "", "untyped"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                family, kind = parts[2], parts[3]
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                page.add(line)
            continue
        match = SAMPLE.match(line)
        if not match:
            raise ValueError(f"not a sample line of the exposition format: {line!r}")
        labels = [(k, escape(model) if k == "model_name" else v) for k, v in LABEL.findall(match["labels"] or "")]
        page.add(Series(match["name"], labels, family, kind, float(match["value"])))
    return page


def starting_value(series: Series, started: float) -> float:
    if series.family.endswith("_created") or series.name == "process_start_time_seconds":
        return started
    if series.family.endswith("_info") or series.family in KEEP_RECORDED:
        return series.recorded
    return 0.0


@dataclass
class Served:
    """What one streamed completion did, timed by the stand-in itself."""

    prompt_tokens: int
    output_tokens: int
    max_tokens: int
    ttft_s: float
    gaps_s: list[float]
    e2e_s: float
    finished: str  # vLLM's finished_reason: length, stop or abort


class Meters:
    """The page's live values. Every change and every rendering holds the lock: a scrape never sees half a
    request."""

    def __init__(self, page: Page, slots: int) -> None:
        self.page = page
        self.slots = max(slots, 1)
        self.running = 0
        self.started = time.time()
        self.lock = threading.Lock()
        for i, line in enumerate(page.lines):
            if isinstance(line, Series):
                page.values[i] = starting_value(line, self.started)

    def _set(self, name: str, value: float, **labels: str) -> None:
        for i, _ in self.page.series(name, **labels):
            self.page.values[i] = float(value)

    def _add(self, name: str, amount: float, **labels: str) -> None:
        for i, _ in self.page.series(name, **labels):
            self.page.values[i] += amount

    def _observe(self, family: str, value: float) -> None:
        """One observation into every label set of a recorded histogram, into the buckets it falls in."""
        self._add(family + "_count", 1)
        self._add(family + "_sum", value)
        for i, s in self.page.series(family + "_bucket"):
            le = s.label("le")
            if le is not None and value <= float(le):
                self.page.values[i] += 1

    def _gauges(self) -> None:
        self._set("vllm:num_requests_running", self.running)
        self._set("vllm:kv_cache_usage_perc", min(self.running / self.slots, 1.0))

    def request_started(self) -> None:
        with self.lock:
            self.running += 1
            self._gauges()

    def request_finished(self, served: Served) -> None:
        with self.lock:
            self.running -= 1
            self._gauges()
            p, n = served.prompt_tokens, served.output_tokens
            self._add("vllm:prompt_tokens_total", p)
            self._add("vllm:prompt_tokens_by_source_total", p, source="local_compute")
            self._add("vllm:prefix_cache_queries_total", p)
            self._add("vllm:generation_tokens_total", n)
            self._add("vllm:request_success_total", 1, finished_reason=served.finished)
            decode_s = max(served.e2e_s - served.ttft_s, 0.0)
            observations = {
                "vllm:request_prompt_tokens": p,
                "vllm:request_prefill_kv_computed_tokens": p,
                "vllm:request_generation_tokens": n,
                "vllm:request_max_num_generation_tokens": served.max_tokens,
                "vllm:request_params_max_tokens": served.max_tokens,
                "vllm:request_params_n": 1,
                "vllm:request_num_preemptions": 0,
                "vllm:time_to_first_token_seconds": served.ttft_s,
                "vllm:e2e_request_latency_seconds": served.e2e_s,
                "vllm:request_queue_time_seconds": 0.0,
                "vllm:request_inference_time_seconds": served.e2e_s,
                "vllm:request_prefill_time_seconds": served.ttft_s,
                "vllm:request_decode_time_seconds": decode_s,
            }
            if n > 1:
                observations["vllm:request_time_per_output_token_seconds"] = decode_s / (n - 1)
            for family, value in observations.items():
                self._observe(family, value)
            for gap in served.gaps_s:
                self._observe("vllm:inter_token_latency_seconds", gap)

    def _process(self) -> None:
        cpu = os.times()
        self._set("process_cpu_seconds_total", cpu.user + cpu.system)
        try:
            size, resident = (int(x) for x in Path("/proc/self/statm").read_text().split()[:2])
            self._set("process_virtual_memory_bytes", size * PAGE_SIZE)
            self._set("process_resident_memory_bytes", resident * PAGE_SIZE)
            self._set("process_open_fds", len(os.listdir("/proc/self/fd")))
        except OSError:
            pass  # no /proc (not Linux): those gauges stay at zero

    def render(self) -> bytes:
        with self.lock:
            self._process()
            out = [line if isinstance(line, str) else f"{line.text()} {self.page.values[i]!r}"
                   for i, line in enumerate(self.page.lines)]
        return ("\n".join(out) + "\n").encode()


def make_handler(meters: Meters, model: str, version: str, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    base = fake.make_handler(model, fake.BEHAVIOURS["healthy"], api_key, None)

    class Handler(base):  # type: ignore[misc,valid-type]
        def do_GET(self) -> None:
            if self.path == "/version":
                self._json(200, {"version": version})
            elif self.path == "/metrics":
                self._plain(200, meters.render(), CONTENT_TYPE)
            else:
                super().do_GET()

        # The fake server calls _stream for a completion it serves (after the key and the model are checked) and
        # _chunk for each event: the stand-in times the tokens as they leave.
        def _stream(self, req: dict[str, object], chat: bool) -> None:
            self._begun = time.monotonic()
            self._tokens: list[float] = []
            self._prompt_tokens = 0
            meters.request_started()
            finished = "abort"
            try:
                super()._stream(req, chat)
                finished = "length"
            finally:
                now = time.monotonic()
                stamps = self._tokens
                max_tokens = min(int(str(req.get("max_tokens") or 16)), fake.MAX_TOKENS_CAP)
                if finished == "length" and len(stamps) < max_tokens:
                    finished = "stop"
                meters.request_finished(Served(
                    prompt_tokens=self._prompt_tokens, output_tokens=len(stamps), max_tokens=max_tokens,
                    ttft_s=(stamps[0] - self._begun) if stamps else now - self._begun,
                    gaps_s=[b - a for a, b in itertools.pairwise(stamps)],
                    e2e_s=now - self._begun, finished=finished))

        def _chunk(self, payload: bytes) -> None:
            super()._chunk(payload)
            if not payload.startswith(b"data: {"):
                return
            event = json.loads(payload[6:])
            if event.get("choices"):
                self._tokens.append(time.monotonic())
            usage = event.get("usage")
            if isinstance(usage, dict):
                self._prompt_tokens = int(usage.get("prompt_tokens", 0))

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="classroom-tiny", help="the served model name")
    parser.add_argument("--version", required=True, help="the vLLM version /version reports, as the recorded page's")
    parser.add_argument("--metrics-page", type=Path, required=True, help="a /metrics page recorded from vLLM")
    parser.add_argument("--max-num-seqs", type=int, default=16, help="request slots (the KV cache share's divisor)")
    args = parser.parse_args()
    try:
        page = parse_page(args.metrics_page.read_text(encoding="utf-8"), args.model)
    except (OSError, ValueError) as exc:
        sys.exit(f"vllm_standin: cannot read the recorded page {args.metrics_page}: {exc}")
    meters = Meters(page, args.max_num_seqs)
    handler = make_handler(meters, args.model, args.version, os.environ.get("VLLM_API_KEY") or None)
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    print(f"TEST STAND-IN for vLLM {args.version} (not vLLM) serving {args.model} on {args.host}:{args.port}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
