#!/usr/bin/python3
"""What the HAProxy gateway adds to a student's wait: the same requests sent through the gateway and straight to
vLLM, alternating, in one run, so that both paths meet the same engine under the same conditions.

Usage, on the box as root (the box's python3; standard library only):
    python3 added_latency.py --direct http://127.0.0.1:8000 --gateway http://127.0.0.1:11434 \
        --env-file /etc/vllm/vllm.env --model classroom-tiny --pairs 200 --out added-latency.json

The API key is read from the env file's VLLM_API_KEY line (or the VLLM_API_KEY environment variable), never
from the command line. Each pair sends one streamed completion through each path (the order alternates, so
neither path always meets a warmer engine), one request at a time: what is measured is the proxy hop, not
queueing. Per path it reports time to the response headers, to the first token and to the last byte, at p50
and p95, and the differences gateway minus direct. Each pair also sends `GET /v1/models` both ways, which
the engine answers without computing: the hop alone, without the engine's variance. Run it on a quiet
machine; bounded by --pairs and --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    headers_s: float
    first_token_s: float
    total_s: float


@dataclass
class PathStats:
    url: str
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def quantile(self, attr: str, q: float) -> float:
        values: list[float] = sorted(float(getattr(s, attr)) for s in self.samples)
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def api_key(env_file: str) -> str:
    if env_file:
        for line in Path(env_file).read_text().splitlines():
            if line.startswith("VLLM_API_KEY="):
                return line.split("=", 1)[1].strip().strip('"')
    return os.environ.get("VLLM_API_KEY", "")


def one_request(base: str, key: str, model: str, max_tokens: int, timeout: float) -> Sample:
    body = json.dumps({"model": model, "prompt": "Explain what a GPU does, briefly.", "max_tokens": max_tokens,
                       "stream": True, "ignore_eos": True, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base.rstrip("/") + "/v1/completions", data=body, headers=headers)
    start = time.perf_counter()
    first = None
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        got_headers = time.perf_counter() - start
        for raw in resp:
            line = raw.strip()
            if first is None and line.startswith(b"data:") and line != b"data: [DONE]":
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    if first is None:
        raise ValueError("no token in the stream")
    return Sample(got_headers, first, total)


def models_request(base: str, key: str, timeout: float) -> Sample:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(base.rstrip("/") + "/v1/models", headers=headers)
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        got_headers = time.perf_counter() - start
        resp.read()
    total = time.perf_counter() - start
    return Sample(got_headers, got_headers, total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct", required=True, help="vLLM's own address")
    parser.add_argument("--gateway", required=True, help="the same service through HAProxy")
    parser.add_argument("--env-file", default="", help="file with a VLLM_API_KEY= line")
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="pairs sent first and not counted")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if not 1 <= args.pairs <= 5000:
        parser.error("--pairs must be between 1 and 5000")
    key = api_key(args.env_file)
    paths = {"direct": PathStats(args.direct), "gateway": PathStats(args.gateway),
             "direct_models": PathStats(args.direct), "gateway_models": PathStats(args.gateway)}
    load_start = os.getloadavg()
    for i in range(args.warmup + args.pairs):
        order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        for name in order + tuple(f"{n}_models" for n in order):
            try:
                if name.endswith("_models"):
                    sample = models_request(paths[name].url, key, args.timeout)
                else:
                    sample = one_request(paths[name].url, key, args.model, args.max_tokens, args.timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                paths[name].failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if i >= args.warmup:
                paths[name].samples.append(sample)
        if i % 50 == 0:
            print(f"pair {i + 1}/{args.warmup + args.pairs}", file=sys.stderr, flush=True)
    result: dict[str, object] = {"pairs": args.pairs, "max_tokens": args.max_tokens,
                                 "load_average_start": load_start, "load_average_end": os.getloadavg()}
    for name, stats in paths.items():
        if not stats.samples:
            print(f"{name}: every request failed: {stats.failures[:3]}", file=sys.stderr)
            return 1
        result[name] = {"url": stats.url, "served": len(stats.samples), "failed": len(stats.failures),
                        "failures": stats.failures[:5],
                        **{f"{attr}_p{int(q * 100)}_ms": round(stats.quantile(attr, q) * 1000, 2)
                           for attr in ("headers_s", "first_token_s", "total_s") for q in (0.5, 0.95)}}
    for suffix in ("", "_models"):
        direct, gateway = result["direct" + suffix], result["gateway" + suffix]
        assert isinstance(direct, dict) and isinstance(gateway, dict)
        result["added_ms" + suffix] = {k: round(gateway[k] - direct[k], 2) for k in direct if k.endswith("_ms")}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
