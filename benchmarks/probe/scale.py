"""Scale benchmark: the probe's memory over a long batch, and its load spread over processes.

Two parts, each sweep under the load-average discipline of quiet.py, the probe run as a user runs it
(`python -m classroom_probe run --config <run file>`, the run file written from the probe's own `Config`):

- memory: one large batch (200K requests by default) with `records` on and one load process, against the
  loopback truth server with zero delays. A sampler reads the probe's RSS from /proc and counts the lines of
  records.jsonl as it grows, so the RSS is known at given request counts. Pass: every request succeeded.
  With zero delays the probe itself is the bottleneck by design, so its verdict is `inconclusive` (exit 3);
  that is expected here.
- workers: a batch at a high stream count with realistic delays, once per load-process count (`workers`
  1, 2, 4 and the probe's own choice), against a truth server on several processes so that the server is not
  the limit. Per count: the output rate reached, each load process's loop lag, the probe's CPU per token,
  the server's CPU.

    python benchmarks/probe/scale.py --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_common import (
    PROBE_SRC,
    REPO,
    CpuSampler,
    Machine,
    from_json,
    probe_env,
    proc_cpu_s,
    proc_rss_kib,
    truth_server,
    utc_now,
    write_text,
)
from classroom_probe import __version__ as probe_version
from classroom_probe.config import Config
from clients import read_report
from quiet import EXIT_BUSY, MachineBusy, add_policy_args, policy_from_args
from scale_report import Checkpoint, MemoryResult, ProbeOutcome, Sample, ScaleMeta, ScaleResults, WorkersResult, page

PAGE = "probe-scale.md"
RESULTS = "probe-scale.json"
PARTS = ("memory", "workers")
EXIT_PROBLEMS = 1


@dataclass(frozen=True)
class Sizes:
    """How much load: the full benchmark's, or the smoke run's (seconds per sweep, to see that it all works)."""

    requests: int
    checkpoints: str
    worker_streams: int
    worker_counts: str
    worker_requests_per_stream: int
    worker_max_tokens: int
    retries: int


FULL = Sizes(200_000, "10000,50000,100000,150000,200000", 512, "1,2,4,auto", 16, 64, 2)
SMOKE = Sizes(10_000, "1000,5000,10000", 64, "1,2,auto", 3, 16, 1)


@dataclass
class Watcher:
    """Polls the probe's RSS and the growing records file until stopped (bounded by the process's life)."""

    pid: int
    records: Path
    interval_s: float
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        t0 = time.monotonic()
        done = 0
        offset = 0
        while not self._stop.is_set():
            rss = proc_rss_kib(self.pid)
            cpu = proc_cpu_s(self.pid)
            if rss is None or cpu is None:
                return
            try:
                with self.records.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                offset += len(chunk)
                done += chunk.count(b"\n")
            except FileNotFoundError:
                pass
            self.samples.append(Sample(round(time.monotonic() - t0, 3), done, rss, cpu))
            self._stop.wait(self.interval_s)


def at_checkpoints(samples: list[Sample], checkpoints: list[int], total: int) -> list[Checkpoint]:
    """RSS at the first sample that had seen each count of finished requests, and the peak up to it.

    The last checkpoint is read at 99.5 % of the batch: once every request is done the probe
    builds its report, whose temporary memory is reported apart (peak_rss_after_load_mib)."""
    out: list[Checkpoint] = []
    for n in checkpoints:
        due = min(n, int(total * 0.995))
        hit = next((i for i, s in enumerate(samples) if s.done >= due), None)
        if hit is None:
            out.append(Checkpoint(n, False))
            continue
        s = samples[hit]
        peak = max(x.rss_kib for x in samples[: hit + 1])
        out.append(Checkpoint(n, True, s.t_s, s.done, round(s.rss_kib / 1024, 1), round(peak / 1024, 1)))
    return out


@dataclass
class ProbeProcess:
    """One probe run from the command line."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    report_dir: Path
    samples: list[Sample]  # RSS and records, when watched
    cpu_s_total: float | None  # every probe process, when sampled


def probe_config(base_url: str, model: str, report_dir: Path, *, requests: int, streams: int, max_tokens: int,
                 workers: int | None, records: bool, time_limit: float) -> Config:  # fmt: skip
    """The probe's settings for one scale run, validated before anything starts."""
    config = Config(
        base_url=base_url,
        model=model,
        max_tokens=max_tokens,
        report_dir=report_dir,
        api="completions",
        mode="batch",
        requests=requests,
        concurrency=streams,
        workers=workers,
        warmup=0.0,
        ignore_eos=True,
        profile="lab",
        metrics_url="off",
        gpu="off",
        records=records,
        quiet=True,
        duration=time_limit,
    )
    config.validate()
    return config


def run_probe(config: Config, run_file: Path, probe_src: Path, timeout_s: float, *,
              watch_interval_s: float | None = None, tree_cpu: bool = False) -> ProbeProcess:  # fmt: skip
    """`python -m classroom_probe run --config <run file>`; optionally watched for RSS and records, or for the
    CPU of all its processes."""
    write_text(run_file, json.dumps(config.to_runfile(), indent=1) + "\n")
    report_dir = config.report_dir
    assert report_dir is not None
    for old in ("report.json", "records.jsonl"):
        (report_dir / old).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "classroom_probe", "run", "--config", str(run_file)]
    t0 = time.monotonic()
    watcher: Watcher | None = None
    sampler: CpuSampler | None = None
    with subprocess.Popen(cmd, cwd=REPO, env=probe_env(probe_src), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:  # fmt: skip
        if watch_interval_s is not None:
            watcher = Watcher(proc.pid, report_dir / "records.jsonl", watch_interval_s).start()
        if tree_cpu:
            sampler = CpuSampler(proc.pid, interval_s=0.5, tree=True).start()
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            err += f"\n[killed after {timeout_s:g} s]"
        for w in (watcher, sampler):
            if w is not None:
                w.stop()
    return ProbeProcess(proc.returncode, out, err, time.monotonic() - t0, report_dir,
                        watcher.samples if watcher else [], sampler.total_cpu_s if sampler else None)  # fmt: skip


def outcome_of(p: ProbeProcess) -> ProbeOutcome:
    report = read_report(p.report_dir)
    if report is None:
        return ProbeOutcome(p.returncode, None, None, None, None, {}, None, None, None, None, None, None, None, [],
                            None, None, p.stdout.strip()[-2000:], p.stderr.strip()[-2000:])  # fmt: skip
    agg, health = report["aggregates"], report["probe_health"]
    per = [w["lag_p99_ms"] for w in health["workers"]] or [health["gate_lag_p99_ms"]]
    return ProbeOutcome(
        returncode=p.returncode,
        verdict=report["verdict"]["status"],
        workers_used=report["load"]["workers"],
        requests_ok=agg["requests_ok"],
        failures_total=agg["failures_total"],
        failures_by_kind=agg["failures_by_kind"],
        output_tokens=agg["output_tokens"],
        measured_window_s=agg["measured_window_s"],
        output_tok_s=agg["output_tok_s"],
        requests_per_s=agg["requests_per_s"],
        loop_lag_p50_ms=health["loop_lag_ms"]["p50"],
        loop_lag_p99_ms=health["gate_lag_p99_ms"],
        loop_lag_max_ms=health["loop_lag_ms"]["max"],
        per_process_lag_p99_ms=per,
        cpu_s=health["cpu_s"],
        cpu_us_per_output_token=health["cpu_us_per_output_token"],
        stdout_tail=p.stdout.strip()[-2000:] if p.returncode not in (0, 1, 3) else "",
        stderr_tail=p.stderr.strip()[-2000:] if p.returncode not in (0, 1, 3) else "",
    )


def memory_run(args: argparse.Namespace, workdir: Path) -> tuple[ProbeProcess, dict[str, object]]:
    with truth_server(None, ttft_ms=0.0, itl_ms=0.0, model=args.model, lifetime_s=args.time_limit + 120) as srv:
        config = probe_config(srv.base_url, args.model, workdir / "memory", requests=args.requests,
                              streams=args.concurrency, max_tokens=args.max_tokens, workers=1, records=True,
                              time_limit=args.time_limit)  # fmt: skip
        proc = run_probe(config, workdir / "memory.run.json", args.probe_src, args.time_limit + 60,
                         watch_interval_s=args.sample_interval)  # fmt: skip
    return proc, config.to_runfile()


def workers_run(args: argparse.Namespace, workdir: Path,
                workers: int | None) -> tuple[ProbeProcess, float | None, dict[str, object]]:  # fmt: skip
    """One load-process count; returns the run, the server's CPU seconds while it ran, and the settings."""
    name = f"workers-{'auto' if workers is None else workers}"
    requests = args.worker_streams * args.worker_requests_per_stream
    with truth_server(None, ttft_ms=args.worker_ttft_ms, itl_ms=args.worker_itl_ms, model=args.model,
                      lifetime_s=args.time_limit + 120, processes=args.server_processes) as srv:  # fmt: skip
        server = CpuSampler(srv.pid, interval_s=0.5, tree=True).start()
        config = probe_config(srv.base_url, args.model, workdir / name, requests=requests,
                              streams=args.worker_streams, max_tokens=args.worker_max_tokens, workers=workers,
                              records=False, time_limit=args.time_limit)  # fmt: skip
        time.sleep(1.0)  # samples of the server's processes on both sides of the run, to interpolate between
        t0 = time.monotonic()
        proc = run_probe(config, workdir / f"{name}.run.json", args.probe_src, args.time_limit + 60, tree_cpu=True)
        t1 = time.monotonic()
        time.sleep(1.0)
        server.stop()
    cpu0, cpu1 = server.cpu_at(t0), server.cpu_at(t1)
    return proc, None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3), config.to_runfile()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 done, 1 a run failed requests or gave no report, 2 bad options, "
        f"{EXIT_BUSY} the machine is busy (nothing written to --out).",
    )
    p.add_argument("--out", required=True, type=Path,
                   help=f"folder for {PAGE}, and results/{RESULTS} under it (docs/benchmarks for the real thing)")
    p.add_argument("--smoke", action="store_true",
                   help=f"a short run to see that everything works: {SMOKE.requests:,} requests in the memory part, "
                        f"{SMOKE.worker_streams} streams and workers {SMOKE.worker_counts} in the other; its figures "
                        "are not fit to commit and it refuses to write into docs/benchmarks")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)} [default: both]")
    add_policy_args(p, FULL.retries, SMOKE.retries)
    g = p.add_argument_group("memory part")
    g.add_argument("--requests", type=int, help=f"requests in the batch [default: {FULL.requests:,}]")
    g.add_argument("--concurrency", type=int, default=64, help="streams [default: 64]")
    g.add_argument("--max-tokens", type=int, default=2, help="tokens per request [default: 2]")
    g.add_argument("--checkpoints", help=f"request counts at which the RSS is read [default: {FULL.checkpoints}]")
    g.add_argument("--sample-interval", type=float, default=0.25, help="seconds between RSS samples [default: 0.25]")
    g = p.add_argument_group("workers part")
    g.add_argument("--worker-streams", type=int, help=f"streams [default: {FULL.worker_streams}]")
    g.add_argument("--worker-counts",
                   help=f"comma-separated load-process counts, auto for the probe's choice [default: "
                        f"{FULL.worker_counts}]")
    g.add_argument("--worker-requests-per-stream", type=int,
                   help=f"requests per stream [default: {FULL.worker_requests_per_stream}]")
    g.add_argument("--worker-max-tokens", type=int, help=f"tokens per request [default: {FULL.worker_max_tokens}]")
    g.add_argument("--worker-ttft-ms", type=float, default=50.0, help="server time to first token [default: 50]")
    g.add_argument("--worker-itl-ms", type=float, default=20.0, help="server delay between tokens [default: 20]")
    g.add_argument("--server-processes", type=int,
                   help="truth-server processes [default: a quarter of the CPUs, 1 to 4]")
    p.add_argument("--time-limit", type=float, default=1200.0, help="seconds one probe run may take [default: 1200]")
    p.add_argument("--model", default="classroom-tiny")
    p.add_argument("--workdir", type=Path, help="keep the probe's reports here (default: removed)")
    p.add_argument("--probe-src", type=Path, default=PROBE_SRC,
                   help="import the probe from this source folder, e.g. a patched copy [default: the repository's]")
    p.add_argument("--notes", type=Path, help="Markdown file whose text becomes the page's Findings section")
    p.add_argument("--from-results", type=Path, metavar="RESULTS.json",
                   help="measure nothing: write the page again from a results JSON (e.g. with new --notes)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _parser()
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    sizes = SMOKE if args.smoke else FULL
    for name, value in asdict(sizes).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.server_processes is None:
        args.server_processes = max(1, min(4, len(os.sched_getaffinity(0)) // 4))
    args.part_list = [x for x in args.parts.split(",") if x]
    if bad := [x for x in args.part_list if x not in PARTS]:
        p.error(f"--parts: unknown {', '.join(bad)}; choose from {', '.join(PARTS)}")
    try:
        args.checkpoint_list = [int(c) for c in args.checkpoints.split(",") if c]
        args.worker_list = [None if c == "auto" else int(c) for c in args.worker_counts.split(",") if c]
    except ValueError:
        p.error("--checkpoints and --worker-counts: comma-separated whole numbers (and auto)")
    if any(w is not None and w < 1 for w in args.worker_list) or not args.worker_list:
        p.error("--worker-counts: 1 or more, or auto")
    if args.retries < 0 or args.max_load <= 0 or args.cooldown < 0:
        p.error("--retries >= 0, --max-load > 0 and --cooldown >= 0")
    if args.notes is not None and not args.notes.is_file():
        p.error(f"--notes: {args.notes} is not a file")
    if args.smoke and args.out.resolve() == (REPO / "docs" / "benchmarks").resolve():
        p.error("--smoke: a smoke run's figures do not belong in docs/benchmarks; give another --out")
    return args


def _problems_of(outcome: ProbeOutcome, expected: int, name: str) -> list[str]:
    if outcome.verdict is None:
        return [f"{name}: no report (exit {outcome.returncode}): {outcome.stderr_tail[-300:]}"]
    if outcome.requests_ok != expected or outcome.failures_total:
        return [f"{name}: {outcome.requests_ok} of {expected} requests ok, failures {outcome.failures_by_kind}"]
    return []


def measure(args: argparse.Namespace, workdir: Path, res: ScaleResults, started: float) -> None:
    """Every sweep, in order; `res` fills as they finish (kept when the machine turns busy half-way)."""
    policy = policy_from_args(args)
    if "memory" in args.part_list:
        body = functools.partial(memory_run, args, workdir)
        swept = policy.sweep(f"memory batch of {args.requests:,} requests", body)
        proc, run_file = swept.value
        samples = proc.samples
        outcome = outcome_of(proc)
        cps = at_checkpoints(samples, args.checkpoint_list, args.requests)
        rss = [c.rss_mib for c in cps if c.reached and c.rss_mib is not None]
        under = [s.rss_kib for s in samples if s.done < args.requests]
        after = [s.rss_kib for s in samples if s.done >= args.requests]
        growth = round(rss[-1] - rss[0], 1) if len(rss) >= 2 else None
        res.memory = MemoryResult(
            requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens,
            wall_s=round(proc.wall_s, 1), outcome=outcome, checkpoints=cps, rss_growth_mib=growth,
            peak_rss_under_load_mib=round(max(under) / 1024, 1) if under else None,
            peak_rss_after_load_mib=round(max(after) / 1024, 1) if after else None,
            records_lines=samples[-1].done if samples else 0, load=swept.load, discarded=swept.discarded,
            run_file=run_file, rss_series=samples[:: max(1, len(samples) // 400)],
        )  # fmt: skip
        res.problems += _problems_of(outcome, args.requests, "memory batch")
        print(f"memory: ok={outcome.requests_ok}/{args.requests} growth={growth} MiB verdict={outcome.verdict} "
              f"load before={swept.load.before_1min}{'' if swept.load.quiet else ' BUSY'} "
              f"[{time.monotonic() - started:.0f} s]", flush=True)  # fmt: skip
    if "workers" in args.part_list:
        requests = args.worker_streams * args.worker_requests_per_stream
        for w in args.worker_list:
            label = f"{args.worker_streams} streams with workers {'auto' if w is None else w}"
            sw = policy.sweep(label, functools.partial(workers_run, args, workdir, w))
            proc, server_cpu, run_file = sw.value
            probe_cpu = proc.cpu_s_total
            outcome = outcome_of(proc)
            window = outcome.measured_window_s
            cores = None if server_cpu is None or not window else round(server_cpu / window, 2)
            res.workers.append(
                WorkersResult(
                    workers_asked=w, streams=args.worker_streams, requests=requests,
                    max_tokens=args.worker_max_tokens, server_processes=args.server_processes,
                    offered_tok_s=round(args.worker_streams * 1000.0 / args.worker_itl_ms, 1)
                    if args.worker_itl_ms > 0 else 0.0,
                    wall_s=round(proc.wall_s, 1), outcome=outcome,
                    probe_cpu_s_total=None if probe_cpu is None else round(probe_cpu, 2), server_cpu_s=server_cpu,
                    server_cpu_cores=cores,
                    load=sw.load, discarded=sw.discarded, run_file=run_file,
                )
            )  # fmt: skip
            res.problems += _problems_of(outcome, requests, label)
            print(f"workers {'auto' if w is None else w} (used {outcome.workers_used}): "
                  f"{outcome.output_tok_s} tok/s lag p99 {outcome.per_process_lag_p99_ms} ms "
                  f"server {cores} cores verdict={outcome.verdict} load before={sw.load.before_1min}"
                  f"{'' if sw.load.quiet else ' BUSY'} [{time.monotonic() - started:.0f} s]", flush=True)  # fmt: skip


def meta_of(args: argparse.Namespace) -> ScaleMeta:
    return ScaleMeta(
        date_utc=utc_now(),
        duration_s=0.0,
        command=shlex.join(["python", "benchmarks/probe/scale.py", *args.argv]),
        machine=Machine.here(),
        probe_version=probe_version,
        probe_src="repository" if args.probe_src.resolve() == PROBE_SRC.resolve() else "patched copy (--probe-src)",
        smoke=args.smoke,
        allow_busy=args.allow_busy,
        max_load=args.max_load,
        retries=args.retries,
        parts=args.part_list,
        ttft_ms=0.0,
        itl_ms=0.0,
        worker_ttft_ms=args.worker_ttft_ms,
        worker_itl_ms=args.worker_itl_ms,
    )


def render(res: ScaleResults, out: Path, notes: Path | None) -> Path:
    write_text(out / "results" / RESULTS, json.dumps(asdict(res), indent=1) + "\n")
    text = notes.read_text(encoding="utf-8") if notes is not None else ""
    write_text(out / PAGE, page(res, text, RESULTS, out / "results"))
    return out / PAGE


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_results is not None:
        res = from_json(ScaleResults, json.loads(args.from_results.read_text(encoding="utf-8")))
        print(render(res, args.out, args.notes))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="probe-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    res = ScaleResults(meta_of(args), False, [], None, [])
    try:
        measure(args, workdir, res, started)
    except MachineBusy as exc:
        res.meta.duration_s = round(time.monotonic() - started, 1)
        kept = ""
        if res.memory is not None or res.workers:
            partial = workdir / "partial-results.json"
            write_text(partial, json.dumps(asdict(res), indent=1))
            kept = f"; the sweeps done so far are in {partial}"
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"{exc}\nNothing written to {args.out}{kept}.", file=sys.stderr)
        return EXIT_BUSY
    res.complete = True
    res.meta.duration_s = round(time.monotonic() - started, 1)
    path = render(res, args.out, args.notes)
    print(f"wrote {path} and {args.out / 'results' / RESULTS} in {res.meta.duration_s / 60:.1f} min")
    if res.problems:
        print("problems:\n" + "\n".join(f"  {p}" for p in res.problems), file=sys.stderr)
        return EXIT_PROBLEMS
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
