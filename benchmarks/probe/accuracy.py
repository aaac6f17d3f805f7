"""Accuracy benchmark: the probe and `vllm bench serve` against a server whose timing is known.

For each concurrency, each client runs against a fresh truth server (its own
process, its own truth log), one client after the other, with the same request
count and output length. Truth is the server's own CLOCK_MONOTONIC log: TTFT
truth = first token written minus handler entry; ITL truth = gaps between token
writes. Client error = client-measured minus truth, per request (TTFT) and per
gap (ITL). Client CPU per output token = the client process's CPU time over the
window from its first request to the last token written, divided by the tokens
in that window (startup and result writing excluded, the same way for every tool).

    python benchmarks/probe/accuracy.py --out-json docs/benchmarks/results/probe-accuracy.json \
        --out-md docs/benchmarks/probe-accuracy.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from accuracy_report import markdown, summarise, targets
from bench_common import CpuSampler, TruthRequest, load_truth, loadavg, percentile, truth_server, vllm_venv
from clients import ClientRun, RunSpec, run_probe_api, run_probe_cli, run_vllm_bench

TOOLS = ("vllm", "probe", "probe-cli")


@dataclass
class Dist:
    """Milliseconds."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> Dist:
        ms = [s * 1000.0 for s in seconds]

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        top = max(ms) if ms else None
        return cls(len(ms), r(percentile(ms, 50)), r(percentile(ms, 95)), r(percentile(ms, 99)), r(top))


@dataclass
class RunResult:
    tool: str
    concurrency: int
    repeat: int
    requests_sent: int
    matched: int
    client_failures: int
    unmatched: int
    itl_gap_count_mismatch: int
    ttft_error_ms: Dist
    ttft_error_after_first_wave_ms: Dist
    itl_error_ms: Dist | None
    send_lag_ms: Dist | None
    ttft_truth_ms: Dist
    ttft_client_ms: Dist
    itl_truth_ms: Dist
    window_s: float | None
    tokens_in_window: int
    client_cpu_s_in_window: float | None
    cpu_us_per_token: float | None
    client_cpu_s_total: float | None
    server_cpu_us_per_token: float | None
    wall_s: float
    returncode: int
    loadavg_before: list[float]
    loadavg_after: list[float]
    extra: dict[str, object]
    stdout_tail: str


def evaluate(run: ClientRun, truth: dict[int, TruthRequest], server: CpuSampler, requests: int) -> dict[str, object]:
    # Keyed by str | None so a client record without a tag simply finds nothing.
    by_tag: dict[str | None, TruthRequest] = {t.tag: t for t in truth.values() if t.tag is not None}
    ttft_err: list[float] = []
    itl_err: list[float] = []
    lag: list[float] = []
    ttft_truth: list[float] = []
    ttft_client: list[float] = []
    itl_truth: list[float] = []
    has_itl = False
    mismatch = unmatched = failures = 0
    matched: list[TruthRequest] = []
    starts: list[float] = []
    ordered: list[tuple[float, float]] = []
    for c in run.requests:
        if not c.ok:
            failures += 1
            continue
        t = truth.get(c.rid) if c.rid is not None else by_tag.get(c.tag)
        if t is None or t.ttft_s is None or c.ttft_s is None:
            unmatched += 1
            continue
        matched.append(t)
        ttft_err.append(c.ttft_s - t.ttft_s)
        ordered.append((c.order, c.ttft_s - t.ttft_s))
        ttft_truth.append(t.ttft_s)
        ttft_client.append(c.ttft_s)
        gaps = t.gaps_s
        itl_truth.extend(gaps)
        if c.start_abs_s is not None:
            # Both sides read CLOCK_MONOTONIC: how long the request took to reach the handler.
            lag.append(t.t_enter - c.start_abs_s)
            starts.append(c.start_abs_s)
        if c.itls_s is not None:
            has_itl = True
            if len(c.itls_s) != len(gaps):
                mismatch += 1
            itl_err.extend(a - b for a, b in zip(c.itls_s, gaps, strict=False))
    window = cpu = srv_cpu = None
    tokens = sum(len(t.t_tokens) for t in matched)
    if matched:
        t0 = min(starts) if starts else min(t.t_enter for t in matched)
        t1 = max(t.t_tokens[-1] for t in matched)
        window = t1 - t0
        cpu = run.sampler.cpu_between(t0, t1)
        srv_cpu = server.cpu_between(t0, t1)
    return {
        "requests_sent": requests,
        "matched": len(matched),
        "client_failures": failures,
        "unmatched": unmatched,
        "itl_gap_count_mismatch": mismatch,
        "ttft_error_ms": Dist.of(ttft_err),
        # The first wave opens every connection at once; later requests reuse them.
        "ttft_error_after_first_wave_ms": Dist.of([e for _, e in sorted(ordered)[run.concurrency :]]),
        "itl_error_ms": Dist.of(itl_err) if has_itl else None,
        "send_lag_ms": Dist.of(lag) if lag else None,
        "ttft_truth_ms": Dist.of(ttft_truth),
        "ttft_client_ms": Dist.of(ttft_client),
        "itl_truth_ms": Dist.of(itl_truth),
        "window_s": None if window is None else round(window, 3),
        "tokens_in_window": tokens,
        "client_cpu_s_in_window": None if cpu is None else round(cpu, 3),
        "cpu_us_per_token": None if cpu is None or not tokens else round(cpu / tokens * 1e6, 2),
        "server_cpu_us_per_token": None if srv_cpu is None or not tokens else round(srv_cpu / tokens * 1e6, 2),
    }


def run_one(
    args: argparse.Namespace, tool: str, concurrency: int, *, repeat: int, workdir: Path, venv: Path | None
) -> RunResult:
    requests = args.requests_per_stream * concurrency if concurrency > 1 else args.requests_single
    workdir = workdir / f"r{repeat}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"truth-{tool}-c{concurrency}.jsonl"
    timeout = args.run_timeout
    with truth_server(
        log, ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, model=args.model, lifetime_s=timeout + 60, nice=args.nice
    ) as srv:
        server_sampler = CpuSampler(srv.pid, interval_s=0.05).start()
        before = loadavg()
        spec = RunSpec(srv.base_url, args.model, requests, concurrency, args.output_len, workdir, timeout, args.nice)
        if tool == "vllm":
            assert venv is not None
            run = run_vllm_bench(spec, venv)
        elif tool == "probe-cli":
            run = run_probe_cli(spec)
        else:
            run = run_probe_api(spec, tool)
        after = loadavg()
        server_sampler.stop()
    truth = load_truth(log)
    ev = evaluate(run, truth, server_sampler, requests)
    return RunResult(
        tool=tool,
        concurrency=concurrency,
        repeat=repeat,
        client_cpu_s_total=run.sampler.total_cpu_s,
        wall_s=round(run.wall_s, 2),
        returncode=run.returncode,
        loadavg_before=before,
        loadavg_after=after,
        extra=run.extra,
        stdout_tail=run.stdout_tail[-1500:] if run.returncode not in (0, 1) else "",
        **ev,  # type: ignore[arg-type]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", default="1,64,256", help="comma-separated stream counts")
    p.add_argument("--tools", default="vllm,probe", help=f"comma-separated, from {','.join(TOOLS)}")
    p.add_argument("--requests-single", type=int, default=60, help="requests at concurrency 1")
    p.add_argument("--requests-per-stream", type=int, default=5, help="requests per stream above concurrency 1")
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=20.0)
    p.add_argument("--model", default="classroom-tiny")
    p.add_argument("--run-timeout", type=float, default=300.0, help="seconds one client run may take")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of pause between runs")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the server and clients (e.g. -10 on a shared machine; negative needs root)",
    )
    p.add_argument("--repeat", type=int, default=1, help="run the whole sweep this many times (medians reported)")
    p.add_argument("--workdir", help="keep raw client outputs and truth logs here (default: a temp dir)")
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-md", help="write the Markdown table here")
    args = p.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        p.error(f"--tools: unknown {bad}")
    concs = [int(c) for c in args.concurrency.split(",")]
    venv = vllm_venv() if "vllm" in tools else None
    with tempfile.TemporaryDirectory(prefix="probe-accuracy-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results: list[RunResult] = []
        plan = [(rep, conc) for rep in range(args.repeat) for conc in concs]
        for i, (rep, conc) in enumerate(plan):
            # Alternate the order so neither client always runs on a machine the other just warmed.
            order = tools if i % 2 == 0 else list(reversed(tools))
            for tool in order:
                time.sleep(args.settle)
                r = run_one(args, tool, conc, repeat=rep, workdir=workdir, venv=venv)
                results.append(r)
                print(
                    f"r{rep} {tool:9s} c={conc:<4d} matched={r.matched}/{r.requests_sent} fail={r.client_failures} "
                    f"ttft_err p50/p95={r.ttft_error_ms.p50}/{r.ttft_error_ms.p95} ms "
                    f"itl_err p50/p95={r.itl_error_ms.p50 if r.itl_error_ms else None}/"
                    f"{r.itl_error_ms.p95 if r.itl_error_ms else None} ms cpu/tok={r.cpu_us_per_token} us "
                    f"load={r.loadavg_after}",
                    flush=True,
                )
    meta = {
        "ttft_ms": args.ttft_ms,
        "itl_ms": args.itl_ms,
        "output_len": args.output_len,
        "requests_single": args.requests_single,
        "requests_per_stream": args.requests_per_stream,
        "repeat": args.repeat,
        "nice": args.nice,
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows = [asdict(r) for r in results]
    summary = summarise(rows)
    out = {"meta": meta, "summary": summary, "targets": targets(summary), "results": rows}
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(out, indent=1) + "\n")
    table = markdown(summary, meta)
    if args.out_md:
        Path(args.out_md).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
