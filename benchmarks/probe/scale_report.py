"""The scale benchmark's results: their types and the Markdown page (docs/benchmarks/probe-scale.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench_common import Machine
from quiet import SweepLoad


@dataclass
class Sample:
    """The probe process at one moment of the memory batch."""

    t_s: float
    done: int
    rss_kib: int
    cpu_s: float


@dataclass
class Checkpoint:
    """The probe's RSS when a given number of requests had finished."""

    requests: int
    reached: bool
    t_s: float | None = None
    requests_seen: int | None = None
    rss_mib: float | None = None
    peak_rss_mib_so_far: float | None = None


@dataclass
class ProbeOutcome:
    """What one probe run said about itself (its exit code and report.json)."""

    returncode: int
    verdict: str | None
    workers_used: int | None
    requests_ok: int | None
    failures_total: int | None
    failures_by_kind: dict[str, int]
    output_tokens: int | None
    measured_window_s: float | None
    output_tok_s: float | None
    requests_per_s: float | None
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None  # what the gate judged: the worst load process
    loop_lag_max_ms: float | None
    per_process_lag_p99_ms: list[float | None]
    cpu_s: float | None  # the probe's own figure, all its processes
    cpu_us_per_output_token: float | None
    stdout_tail: str
    stderr_tail: str


@dataclass
class MemoryResult:
    """The long batch: RSS at request-count checkpoints."""

    requests: int
    concurrency: int
    max_tokens: int
    wall_s: float
    outcome: ProbeOutcome
    checkpoints: list[Checkpoint]
    rss_growth_mib: float | None
    peak_rss_under_load_mib: float | None
    peak_rss_after_load_mib: float | None
    records_lines: int
    load: SweepLoad
    discarded: list[SweepLoad]
    run_file: dict[str, object]
    rss_series: list[Sample]


@dataclass
class WorkersResult:
    """One load-process count at the high stream count."""

    workers_asked: int | None  # None: the probe's own choice
    streams: int
    requests: int
    max_tokens: int
    server_processes: int
    offered_tok_s: float
    wall_s: float
    outcome: ProbeOutcome
    probe_cpu_s_total: float | None  # every probe process over its whole life, sampled from /proc
    server_cpu_s: float | None  # the server's CPU while the probe ran (it idles before and after the load)
    server_cpu_cores: float | None  # that CPU over the probe's measured window, in cores
    load: SweepLoad
    discarded: list[SweepLoad]
    run_file: dict[str, object]


@dataclass
class ScaleMeta:
    date_utc: str
    duration_s: float
    command: str
    machine: Machine
    probe_version: str
    probe_src: str
    smoke: bool
    allow_busy: bool
    max_load: float
    retries: int
    parts: list[str]
    ttft_ms: float  # memory part (zero: the probe is the bottleneck)
    itl_ms: float
    worker_ttft_ms: float
    worker_itl_ms: float


@dataclass
class ScaleResults:
    meta: ScaleMeta
    complete: bool
    problems: list[str]
    memory: MemoryResult | None
    workers: list[WorkersResult]

    @property
    def busy(self) -> bool:
        loads = ([self.memory.load] if self.memory else []) + [w.load for w in self.workers]
        return any(not ld.quiet for ld in loads)


def _n(v: float | None, digits: int = 1, unit: str = "") -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}{unit}"


def _load(ld: SweepLoad) -> str:
    return f"{ld.before_1min:.2f} / {max(ld.others_max_1min, ld.others_mean):.2f}" + ("" if ld.quiet else " **busy**")


def _workers_word(w: int | None) -> str:
    return "auto" if w is None else str(w)


def _earlier_growth(results_dir: Path) -> str:
    path = results_dir / "probe-scale-before-array.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        growth = float(old["rss_growth_first_to_last_checkpoint_mib"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return (
        f" An earlier probe, whose percentile reservoirs were Python lists rather than `array(\"d\")`, grew by "
        f"{growth:.1f} MiB over the same batch (`results/{path.name}`); that growth is why they are arrays now."
    )


def _memory_section(mem: MemoryResult, results_dir: Path) -> list[str]:
    o = mem.outcome
    lines = [
        f"## Memory over a long batch ({mem.requests:,} requests)",
        "",
        f"One load process, {mem.concurrency} streams, {mem.max_tokens} tokens per request, zero server delay, "
        "records written as requests finish. RSS grew by "
        f"{_n(mem.rss_growth_mib, unit=' MiB')} from the first checkpoint to the last.{_earlier_growth(results_dir)}",
        "",
        "| finished requests | RSS (MiB) | peak so far (MiB) | seconds |",
        "|---|---|---|---|",
    ]
    for c in mem.checkpoints:
        if c.reached:
            lines.append(f"| {c.requests:,} | {_n(c.rss_mib)} | {_n(c.peak_rss_mib_so_far)} | {_n(c.t_s)} |")
        else:
            lines.append(f"| {c.requests:,} | not reached | | |")
    lines += [
        f"| peak while building the report, after the load | {_n(mem.peak_rss_after_load_mib)} | | |",
        "",
        "| | |",
        "|---|---|",
        f"| requests ok / failures | {_n(o.requests_ok, 0)} / {_n(o.failures_total, 0)} |",
        f"| wall time | {mem.wall_s:.0f} s ({_n(o.requests_per_s, 0)} requests/s) |",
        f"| probe CPU | {_n(o.cpu_s)} s |",
        f"| probe loop lag p50 / p99 | {_n(o.loop_lag_p50_ms)} / {_n(o.loop_lag_p99_ms)} ms |",
        f"| verdict | `{o.verdict}` (exit {o.returncode}; `inconclusive` is expected at zero delay) |",
        f"| load avg before / others' load during | {_load(mem.load)} |",
        "",
    ]
    return lines


def _workers_section(res: ScaleResults) -> list[str]:
    ws = res.workers
    first = ws[0]
    lines = [
        f"## Load processes at {first.streams} streams",
        "",
        f"{first.requests:,} requests of {first.max_tokens} tokens at {first.streams} streams per count; server time "
        f"to first token {res.meta.worker_ttft_ms:g} ms and {res.meta.worker_itl_ms:g} ms between tokens, so "
        f"{first.offered_tok_s:,.0f} output tokens/s asked for at most, served by {first.server_processes} server "
        "process(es).",
        "",
        "| workers asked / used | output tok/s | requests ok / failures | loop lag p99, worst process (ms) "
        "| loop lag p99 per process (ms) | probe CPU µs/token | server CPU (cores) | verdict | load avg before / "
        "others' load during |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in ws:
        o = w.outcome
        per = ", ".join(_n(x) for x in o.per_process_lag_p99_ms) or "n/a"
        lines.append(
            f"| {_workers_word(w.workers_asked)} / {_n(o.workers_used, 0)} | {_n(o.output_tok_s, 0)} "
            f"| {_n(o.requests_ok, 0)} / {_n(o.failures_total, 0)} | {_n(o.loop_lag_p99_ms)} | {per} "
            f"| {_n(o.cpu_us_per_output_token)} | {_n(w.server_cpu_cores, 2)} | `{o.verdict}` | {_load(w.load)} |"
        )
    lines += [
        "",
        "\"output tok/s\" is the probe's own figure over its measured window. \"probe CPU\" is the probe's own "
        "figure (every load process and the parent). \"server CPU\" is the server's CPU time while the probe ran "
        "over the probe's measured window (the server idles before and after the load): near the server's "
        "process count, the server and not the probe was the limit.",
        "",
    ]
    return lines


def _answer(res: ScaleResults) -> list[str]:
    out: list[str] = []
    mem = res.memory
    if mem is not None:
        o = mem.outcome
        out.append(
            f"- Memory: {_n(o.requests_ok, 0)} of {mem.requests:,} requests ok, {_n(o.failures_total, 0)} failures; "
            f"RSS grew by {_n(mem.rss_growth_mib, unit=' MiB')} from the first checkpoint to the last."
        )
    if res.workers:
        best = max(res.workers, key=lambda w: w.outcome.output_tok_s or 0.0)
        one = next((w for w in res.workers if w.workers_asked == 1), None)
        text = (
            f"- Load processes: the most output, {_n(best.outcome.output_tok_s, 0)} tok/s, came with "
            f"{_workers_word(best.workers_asked)} ({_n(best.outcome.workers_used, 0)} used), loop lag p99 of the "
            f"worst process {_n(best.outcome.loop_lag_p99_ms)} ms"
        )
        if one is not None and one is not best:
            text += (
                f"; one process reached {_n(one.outcome.output_tok_s, 0)} tok/s with loop lag p99 "
                f"{_n(one.outcome.loop_lag_p99_ms)} ms"
            )
        out.append(text + ".")
    return out


def page(res: ScaleResults, notes: str, results_name: str, results_dir: Path) -> str:
    m = res.meta
    lines = [
        "# Probe at scale: memory over a long batch, and the load spread over processes",
        "",
        f"<!-- Generated by benchmarks/probe/scale.py from results/{results_name}; change the generator or the "
        "notes file, not this page. -->",
        "",
        "**Questions**: does the probe's memory stay flat over a long batch, with no client error? How much "
        "output can it drive, and how late does each event loop run, with the load in one process or spread "
        "over several?",
        "",
        "**Answers**:",
        "",
        *_answer(res),
        "",
    ]
    if res.busy or m.smoke or not res.complete:
        why = ["a smoke run (tiny loads)"] if m.smoke else []
        why += ["measured while other processes loaded the machine"] if res.busy else []
        why += ["the run did not complete"] if not res.complete else []
        lines += [f"> **Not fit to commit**: {'; '.join(why)}.", ""]
    if res.problems:
        lines += ["Problems in this run:", "", *[f"- {p}" for p in res.problems], ""]
    if res.memory is not None:
        lines += _memory_section(res.memory, results_dir)
    if res.workers:
        lines += _workers_section(res)
    lines += [
        "## Conditions",
        "",
        f"- Machine: {m.machine.cpus} CPUs ({m.machine.cpu_model}), Linux {m.machine.kernel}; Python "
        f"{m.machine.python}; probe {m.probe_version} ({m.probe_src}).",
        f"- Load: each sweep started with the 1-minute load average under {m.max_load:.1f} and was redone (at most "
        f"{m.retries} time(s)) when other processes' load reached that limit during it, as a 1-minute average or "
        "as its mean over the sweep (\"load avg before / others' load during\" above; the same rules as "
        "probe-accuracy.md).",
        f"- Measured {m.date_utc}, {m.duration_s / 60:.1f} min in all.",
        "",
        "## How it was measured",
        "",
        "- The probe runs as a user runs it: `python -m classroom_probe run --config <run file>`, the run file "
        "written by the benchmark from the probe's own `Config` (kept per run in the results JSON), batch mode, "
        "`api` completions, `ignore_eos`, no warm-up, `profile` lab, metrics and GPU sampling off.",
        "- The server is `benchmarks/probe/truth_server.py` on loopback, keeping no log.",
        "- Memory: a sampler reads the probe's RSS (`/proc/<pid>/status`, VmRSS) every 0.25 s and counts the "
        "lines of records.jsonl as the probe writes them. The last checkpoint is read at 99.5 % of the batch; the "
        "report's own memory after the load is given apart.",
        "- Load processes: `workers` set per count (`auto` leaves it to the probe: from the cores and the expected "
        "token rate). The loop lag is the probe's own measurement, per load process.",
        "",
        "## Findings",
        "",
        notes.strip() if notes.strip() else "_No notes were given for this run (`scale.py --notes FILE.md`)._",
        "",
        "## Reproduce",
        "",
        "```bash",
        m.command,
        "```",
        "",
        f"Raw figures with the RSS series: `results/{results_name}`. See `benchmarks/probe/README.md`.",
        "",
    ]
    return "\n".join(lines)
