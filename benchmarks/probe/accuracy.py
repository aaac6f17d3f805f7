"""Accuracy benchmark: the probe and `vllm bench serve` against a server whose timing is known.

At each stream count, each client runs against a fresh truth server (its own
process, its own truth log), one client after the other, with the same request
count and output length. Truth is the server's own CLOCK_MONOTONIC log: TTFT
truth = first token written minus handler entry; ITL truth = gaps between token
writes. Client error = client-measured minus truth, per request (TTFT) and per
gap (ITL). Client CPU per output token = the client process's CPU time over the
window from its first request to the last token written, divided by the tokens
in that window (start-up and result writing excluded, the same way for every tool).

Each client run is a sweep under the load-average discipline of quiet.py. The
results JSON and the page (probe-accuracy.md) are written from the same figures:

    python benchmarks/probe/accuracy.py --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from accuracy_report import AccuracyResults, Dist, Evaluation, Meta, RunResult, page, summarise, targets
from bench_common import (
    REPO,
    CpuSampler,
    Machine,
    TruthRequest,
    from_json,
    load_truth,
    truth_server,
    utc_now,
    vllm_venv,
    vllm_version,
    write_text,
)
from classroom_probe import __version__ as probe_version
from clients import PROBE_WORKERS, ClientRun, RunSpec, run_probe_api, run_probe_cli, run_vllm_bench
from quiet import EXIT_BUSY, MachineBusy, Swept, add_policy_args, policy_from_args

TOOLS = ("vllm", "probe", "probe-cli")
PAGE = "probe-accuracy.md"
RESULTS = "probe-accuracy.json"
EXIT_PROBLEMS = 1


@dataclass(frozen=True)
class Sizes:
    """How much load: the full benchmark's, or the smoke run's (seconds per sweep, to see that it all works)."""

    concurrency: str
    tools: str
    requests_single: int
    requests_per_stream: int
    output_len: int
    repeat: int
    retries: int
    run_timeout: float


FULL = Sizes("1,64,256", "vllm,probe", 60, 5, 32, 3, 2, 300.0)
SMOKE = Sizes("1,8", "vllm,probe,probe-cli", 8, 3, 8, 1, 1, 180.0)


def evaluate(run: ClientRun, truth: dict[int, TruthRequest], server: CpuSampler, requests: int) -> Evaluation:
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
    return Evaluation(
        requests_sent=requests,
        matched=len(matched),
        client_failures=failures,
        unmatched=unmatched,
        itl_gap_count_mismatch=mismatch,
        ttft_error_ms=Dist.of(ttft_err),
        # The first wave opens every connection at once; later requests reuse them.
        ttft_error_after_first_wave_ms=Dist.of([e for _, e in sorted(ordered)[run.concurrency :]]),
        itl_error_ms=Dist.of(itl_err) if has_itl else None,
        send_lag_ms=Dist.of(lag) if lag else None,
        ttft_truth_ms=Dist.of(ttft_truth),
        ttft_client_ms=Dist.of(ttft_client),
        itl_truth_ms=Dist.of(itl_truth),
        window_s=None if window is None else round(window, 3),
        tokens_in_window=tokens,
        client_cpu_s_in_window=None if cpu is None else round(cpu, 3),
        cpu_us_per_token=None if cpu is None or not tokens else round(cpu / tokens * 1e6, 2),
        server_cpu_us_per_token=None if srv_cpu is None or not tokens else round(srv_cpu / tokens * 1e6, 2),
    )


def run_one(
    args: argparse.Namespace, tool: str, concurrency: int, *, repeat: int, workdir: Path, venv: Path | None
) -> tuple[ClientRun, Evaluation]:
    """One client at one stream count against a fresh truth server."""
    requests = args.requests_per_stream * concurrency if concurrency > 1 else args.requests_single
    workdir = workdir / f"r{repeat}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"truth-{tool}-c{concurrency}.jsonl"
    timeout = args.run_timeout
    with truth_server(
        log, ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, model=args.model, lifetime_s=timeout + 60, nice=args.nice
    ) as srv:
        server_sampler = CpuSampler(srv.pid, interval_s=0.05).start()
        spec = RunSpec(srv.base_url, args.model, requests, concurrency, args.output_len, workdir, timeout, args.nice)
        if tool == "vllm":
            assert venv is not None
            run = run_vllm_bench(spec, venv)
        elif tool == "probe-cli":
            run = run_probe_cli(spec)
        else:
            run = run_probe_api(spec)
        server_sampler.stop()
    return run, evaluate(run, load_truth(log), server_sampler, requests)


def result_of(tool: str, concurrency: int, repeat: int, swept: Swept[tuple[ClientRun, Evaluation]]) -> RunResult:
    run, ev = swept.value
    return RunResult(
        tool=tool,
        concurrency=concurrency,
        repeat=repeat,
        ev=ev,
        client_cpu_s_total=run.sampler.total_cpu_s,
        wall_s=round(run.wall_s, 2),
        returncode=run.returncode,
        load=swept.load,
        discarded=swept.discarded,
        probe=run.probe,
        probe_run_file=run.run_file,
        stdout_tail=run.stdout_tail[-1500:] if run.returncode not in (0, 1, 3) else "",
    )


def problems_of(r: RunResult) -> list[str]:
    """What makes a run's figures wrong, rather than merely large."""
    name = f"repeat {r.repeat + 1}, {r.tool} at {r.concurrency} stream(s)"
    out: list[str] = []
    ok_codes = (0,) if r.tool == "vllm" else (0, 1, 3)  # the probe's verdict is not the benchmark's business
    if r.returncode not in ok_codes:
        out.append(f"{name}: exit code {r.returncode}: {r.stdout_tail.strip()[-300:]}")
    if r.ev.matched < r.ev.requests_sent:
        out.append(
            f"{name}: {r.ev.matched} of {r.ev.requests_sent} requests matched to the server's log "
            f"({r.ev.client_failures} failed, {r.ev.unmatched} unmatched)"
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 done, 1 a run gave wrong or missing figures, 2 bad options, "
        f"{EXIT_BUSY} the machine is busy (nothing written to --out).",
    )
    p.add_argument("--out", required=True, type=Path,
                   help=f"folder for {PAGE}, and results/{RESULTS} under it (docs/benchmarks for the real thing)")
    p.add_argument("--smoke", action="store_true",
                   help=f"a short run to see that everything works: streams {SMOKE.concurrency}, "
                        f"{SMOKE.requests_single} requests at 1 stream, {SMOKE.requests_per_stream} per stream above, "
                        f"{SMOKE.output_len} tokens, clients {SMOKE.tools}, {SMOKE.retries} redo at most; its "
                        "figures are not fit to commit and it refuses to write into docs/benchmarks")
    add_policy_args(p, FULL.retries, SMOKE.retries)
    p.add_argument("--concurrency", help=f"comma-separated stream counts [default: {FULL.concurrency}]")
    p.add_argument("--tools", help=f"comma-separated, from {','.join(TOOLS)} [default: {FULL.tools}]")
    p.add_argument("--requests-single", type=int, help=f"requests at 1 stream [default: {FULL.requests_single}]")
    p.add_argument("--requests-per-stream", type=int,
                   help=f"requests per stream above 1 stream [default: {FULL.requests_per_stream}]")
    p.add_argument("--output-len", type=int, help=f"output tokens per request [default: {FULL.output_len}]")
    p.add_argument("--repeat", type=int, help=f"repeats of the whole sweep; medians reported [default: {FULL.repeat}]")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="the server's time to first token [default: 50]")
    p.add_argument("--itl-ms", type=float, default=20.0, help="the server's delay between tokens [default: 20]")
    p.add_argument("--model", default="classroom-tiny")
    p.add_argument("--run-timeout", type=float,
                   help=f"seconds one client run may take [default: {FULL.run_timeout:g}]")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of pause before each run [default: 2]")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness of the server and clients (negative needs root) [default: 0]")
    p.add_argument("--workdir", type=Path, help="keep raw client outputs and truth logs here (default: removed)")
    p.add_argument("--notes", type=Path, help="Markdown file whose text becomes the page's Findings section")
    p.add_argument("--from-results", type=Path, metavar="RESULTS.json",
                   help="measure nothing: write the page again from a results JSON (e.g. with new --notes)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    sizes = SMOKE if args.smoke else FULL
    for name, value in asdict(sizes).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        args.concs = [int(c) for c in args.concurrency.split(",") if c]
    except ValueError:
        p.error(f"--concurrency: comma-separated whole numbers, got {args.concurrency!r}")
    args.tool_list = [t for t in args.tools.split(",") if t]
    if bad := [t for t in args.tool_list if t not in TOOLS]:
        p.error(f"--tools: unknown {', '.join(bad)}; choose from {', '.join(TOOLS)}")
    if not args.concs or min(args.concs) < 1:
        p.error("--concurrency: stream counts of 1 or more")
    if args.retries < 0 or args.repeat < 1 or args.max_load <= 0 or args.cooldown < 0:
        p.error("--retries >= 0, --repeat >= 1, --max-load > 0 and --cooldown >= 0")
    if args.notes is not None and not args.notes.is_file():
        p.error(f"--notes: {args.notes} is not a file")
    docs = (REPO / "docs" / "benchmarks").resolve()
    if args.smoke and args.out.resolve() == docs:
        p.error("--smoke: a smoke run's figures do not belong in docs/benchmarks; give another --out")
    return args


def render(res: AccuracyResults, out: Path, notes: Path | None) -> Path:
    write_text(out / "results" / RESULTS, json.dumps(asdict(res), indent=1) + "\n")
    text = notes.read_text(encoding="utf-8") if notes is not None else ""
    write_text(out / PAGE, page(res, text, RESULTS))
    return out / PAGE


def measure(args: argparse.Namespace, venv: Path | None, workdir: Path, runs: list[RunResult], started: float) -> None:
    """Every sweep, in order; `runs` grows as they finish (kept when the machine turns busy half-way)."""
    policy = policy_from_args(args)
    print(f"probe: {PROBE_WORKERS} load process (workers={PROBE_WORKERS}), single-event-loop figures", flush=True)
    plan = [(rep, conc) for rep in range(args.repeat) for conc in args.concs]
    for i, (rep, conc) in enumerate(plan):
        # Alternate the order so neither client always runs on a machine the other just warmed.
        order = args.tool_list if i % 2 == 0 else list(reversed(args.tool_list))
        for tool in order:
            time.sleep(args.settle)
            label = f"repeat {rep + 1}, {tool} at {conc} stream(s)"
            body = functools.partial(run_one, args, tool, conc, repeat=rep, workdir=workdir, venv=venv)
            swept = policy.sweep(label, body)
            r = result_of(tool, conc, rep, swept)
            runs.append(r)
            itl = r.ev.itl_error_ms
            ld = r.load
            print(
                f"r{rep + 1} {tool:9s} c={conc:<4d} matched={r.ev.matched}/{r.ev.requests_sent} "
                f"ttft_err p50/p95={r.ev.ttft_error_ms.p50}/{r.ev.ttft_error_ms.p95} ms "
                f"itl_err p95={itl.p95 if itl else 'n/a'} ms cpu/tok={r.ev.cpu_us_per_token} us "
                f"load before={ld.before_1min} others max={max(ld.others_max_1min, ld.others_mean)}"
                f"{'' if ld.quiet else ' BUSY'} attempts={len(r.discarded) + 1} "
                f"[{time.monotonic() - started:.0f} s]",
                flush=True,
            )


def meta_of(args: argparse.Namespace, duration_s: float) -> Meta:
    return Meta(
        date_utc=utc_now(),
        duration_s=round(duration_s, 1),
        command=shlex.join(["python", "benchmarks/probe/accuracy.py", *args.argv]),
        machine=Machine.here(),
        vllm=args.vllm_version,
        probe_version=probe_version,
        probe_workers=PROBE_WORKERS,
        smoke=args.smoke,
        allow_busy=args.allow_busy,
        max_load=args.max_load,
        retries=args.retries,
        concurrency=args.concs,
        tools=args.tool_list,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        output_len=args.output_len,
        requests_single=args.requests_single,
        requests_per_stream=args.requests_per_stream,
        repeat=args.repeat,
        nice=args.nice,
    )


def results_of(args: argparse.Namespace, runs: list[RunResult], duration_s: float, complete: bool) -> AccuracyResults:
    summary = summarise(runs)
    problems = [p for r in runs for p in problems_of(r)]
    return AccuracyResults(meta_of(args, duration_s), complete, problems, summary, targets(summary), runs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_results is not None:
        res = from_json(AccuracyResults, json.loads(args.from_results.read_text(encoding="utf-8")))
        print(render(res, args.out, args.notes))
        return 0
    venv = vllm_venv() if "vllm" in args.tool_list else None
    args.vllm_version = vllm_version(venv) if venv is not None else "vllm bench serve not run"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="probe-accuracy-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    runs: list[RunResult] = []
    try:
        measure(args, venv, workdir, runs, started)
    except MachineBusy as exc:
        kept = ""
        if runs:
            partial = workdir / "partial-results.json"
            write_text(partial, json.dumps(asdict(results_of(args, runs, time.monotonic() - started, False)), indent=1))
            kept = f"; the {len(runs)} run(s) done so far are in {partial}"
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"{exc}\nNothing written to {args.out}{kept}.", file=sys.stderr)
        return EXIT_BUSY
    res = results_of(args, runs, time.monotonic() - started, True)
    path = render(res, args.out, args.notes)
    for t in res.targets:
        print(f"target: {t.target} at {t.streams} stream(s), {t.tool}: {t.result} (probe {t.probe}, "
              f"vllm {t.vllm}, limit {t.limit} {t.unit})")  # fmt: skip
    print(f"wrote {path} and {args.out / 'results' / RESULTS} in {res.meta.duration_s / 60:.1f} min")
    if res.problems:
        print("problems:\n" + "\n".join(f"  {p}" for p in res.problems), file=sys.stderr)
        return EXIT_PROBLEMS
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
