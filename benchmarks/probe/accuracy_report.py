"""The accuracy benchmark's results: their types, the medians over repeats, the issue's targets, the Markdown page.

`accuracy.py` measures and fills these; `page()` writes docs/benchmarks/probe-accuracy.md from them (or from
the results JSON again, with `accuracy.py --from-results`), so the page and the JSON always agree.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from bench_common import Machine, percentile
from clients import ProbeSelf
from quiet import SweepLoad

PROBE_TOOLS = ("probe", "probe-cli")
TOOL_NAMES = {"vllm": "vllm bench serve", "probe": "probe", "probe-cli": "probe (command line)"}
Result = Literal["pass", "miss", "n/a"]


@dataclass
class Dist:
    """A distribution in milliseconds."""

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
class Evaluation:
    """One client run against the server's own log."""

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
    server_cpu_us_per_token: float | None


@dataclass
class RunResult:
    """One figure: one client at one stream count in one repeat, with the load it ran under."""

    tool: str
    concurrency: int
    repeat: int
    ev: Evaluation
    client_cpu_s_total: float | None
    wall_s: float
    returncode: int
    load: SweepLoad
    discarded: list[SweepLoad]
    probe: ProbeSelf | None
    probe_run_file: dict[str, object] | None
    stdout_tail: str


@dataclass
class Stat:
    """The median over repeats, with the lowest and highest."""

    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        v = [x for x in values if x is not None]
        if not v:
            return cls(None, None, None)
        return cls(round(statistics.median(v), 3), round(min(v), 3), round(max(v), 3))


@dataclass
class Row:
    """One client at one stream count, over its repeats."""

    streams: int
    tool: str
    repeats: int
    matched: int
    sent: int
    client_failures: int
    ttft_err_p50_ms: Stat
    ttft_err_p95_ms: Stat
    ttft_err_after_first_wave_p95_ms: Stat
    itl_err_p50_ms: Stat
    itl_err_p95_ms: Stat
    send_lag_p50_ms: Stat
    cpu_us_per_token: Stat
    server_cpu_us_per_token: Stat
    probe_loop_lag_p99_ms: Stat
    load_before_1min: list[float]
    others_max_1min: float
    others_mean_max: float
    busy_runs: int
    discarded_runs: int
    verdicts: list[str] = field(default_factory=list)


@dataclass
class Target:
    """One of the issue's targets at one stream count."""

    target: str
    streams: int
    tool: str
    probe: float | None
    vllm: float | None
    limit: float | None  # the figure the probe must stay at or under (errors as absolute values)
    result: Result
    unit: str


@dataclass
class Meta:
    """How, where and when the figures were measured."""

    date_utc: str
    duration_s: float
    command: str
    machine: Machine
    vllm: str
    probe_version: str
    probe_workers: int
    smoke: bool
    allow_busy: bool
    max_load: float
    retries: int
    concurrency: list[int]
    tools: list[str]
    ttft_ms: float
    itl_ms: float
    output_len: int
    requests_single: int
    requests_per_stream: int
    repeat: int
    nice: int


@dataclass
class AccuracyResults:
    """Everything one run of accuracy.py produced (the results JSON)."""

    meta: Meta
    complete: bool
    problems: list[str]
    summary: list[Row]
    targets: list[Target]
    runs: list[RunResult]

    @property
    def busy(self) -> bool:
        return any(r.busy_runs for r in self.summary)


def summarise(runs: list[RunResult]) -> list[Row]:
    """One row per (stream count, client): the median of each figure over repeats, and its range."""
    rows: list[Row] = []
    keys = sorted({(r.concurrency, r.tool) for r in runs}, key=lambda k: (k[0], k[1] != "vllm", k[1]))
    for conc, tool in keys:
        mine = [r for r in runs if r.tool == tool and r.concurrency == conc]

        def stat(get: Callable[[RunResult], float | None], runs: list[RunResult] = mine) -> Stat:
            return Stat.of(get(r) for r in runs)

        rows.append(
            Row(
                streams=conc,
                tool=tool,
                repeats=len(mine),
                matched=sum(r.ev.matched for r in mine),
                sent=sum(r.ev.requests_sent for r in mine),
                client_failures=sum(r.ev.client_failures for r in mine),
                ttft_err_p50_ms=stat(lambda r: r.ev.ttft_error_ms.p50),
                ttft_err_p95_ms=stat(lambda r: r.ev.ttft_error_ms.p95),
                ttft_err_after_first_wave_p95_ms=stat(lambda r: r.ev.ttft_error_after_first_wave_ms.p95),
                itl_err_p50_ms=stat(lambda r: r.ev.itl_error_ms.p50 if r.ev.itl_error_ms else None),
                itl_err_p95_ms=stat(lambda r: r.ev.itl_error_ms.p95 if r.ev.itl_error_ms else None),
                send_lag_p50_ms=stat(lambda r: r.ev.send_lag_ms.p50 if r.ev.send_lag_ms else None),
                cpu_us_per_token=stat(lambda r: r.ev.cpu_us_per_token),
                server_cpu_us_per_token=stat(lambda r: r.ev.server_cpu_us_per_token),
                probe_loop_lag_p99_ms=stat(lambda r: r.probe.loop_lag_p99_ms if r.probe else None),
                load_before_1min=[r.load.before_1min for r in mine],
                others_max_1min=max(r.load.others_max_1min for r in mine),
                others_mean_max=max(r.load.others_mean for r in mine),
                busy_runs=sum(not r.load.quiet for r in mine),
                discarded_runs=sum(len(r.discarded) for r in mine),
                verdicts=[r.probe.verdict for r in mine if r.probe is not None],
            )
        )
    return rows


def _half(target: str, tool: str, streams: int, mine: float | None, ref: float | None) -> Target:
    limit = None if ref is None else round(abs(ref) / 2, 3)
    result: Result = "n/a" if mine is None or limit is None else ("pass" if abs(mine) <= limit else "miss")
    return Target(target, streams, tool, mine, ref, limit, result, "ms")


def targets(rows: list[Row]) -> list[Target]:
    """The issue's targets, on the medians, against `vllm bench serve` in the same run."""
    out: list[Target] = []
    by = {(r.tool, r.streams): r for r in rows}
    for streams in sorted({r.streams for r in rows}):
        ref = by.get(("vllm", streams))
        for tool in PROBE_TOOLS:
            p = by.get((tool, streams))
            if p is None:
                continue
            vt = ref.ttft_err_p95_ms.median if ref else None
            vi = ref.itl_err_p95_ms.median if ref else None
            out.append(_half("TTFT p95 error at most half of vllm bench serve's", tool, streams,
                             p.ttft_err_p95_ms.median, vt))  # fmt: skip
            if tool == "probe":  # the command line's records carry no gaps
                out.append(_half("ITL p95 error at most half of vllm bench serve's", tool, streams,
                                 p.itl_err_p95_ms.median, vi))  # fmt: skip
            if streams == 1:
                v = p.ttft_err_p95_ms.median
                res: Result = "n/a" if v is None else ("pass" if abs(v) < 1.0 else "miss")
                out.append(Target("TTFT p95 error under 1 ms", 1, tool, v, None, 1.0, res, "ms"))
            mine, theirs = p.cpu_us_per_token.median, ref.cpu_us_per_token.median if ref else None
            res = "n/a" if mine is None or theirs is None else ("pass" if mine <= theirs else "miss")
            out.append(Target("CPU per output token no higher than vllm bench serve's", streams, tool, mine, theirs,
                              theirs, res, "µs"))  # fmt: skip
    return out


# --- the page -------------------------------------------------------------------------------------------------


def _f(v: float | None, signed: bool = True, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _stat(s: Stat, repeats: int, signed: bool = True, digits: int = 2) -> str:
    if s.median is None or repeats < 2 or s.low == s.high:
        return _f(s.median, signed, digits)
    return f"{_f(s.median, signed, digits)} ({_f(s.low, signed, digits)} to {_f(s.high, signed, digits)})"


def _loads(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if lo == hi else f"{lo:.2f} to {hi:.2f}"


def _margin(t: Target) -> str:
    if t.result != "miss" or t.probe is None or t.limit is None:
        return ""
    over = abs(t.probe) - t.limit if t.unit == "ms" else t.probe - t.limit
    digits = 2 if t.unit == "ms" else 1
    return f"by {over:.{digits}f} {t.unit}" + (f", {abs(t.probe) / t.limit:.1f}x the limit" if t.limit > 0 else "")


def _answer(res: AccuracyResults) -> str:
    probe = [t for t in res.targets if t.tool == "probe"]
    met = sum(t.result == "pass" for t in probe)
    judged = sum(t.result != "n/a" for t in probe)
    where = "a busy machine (figures flagged, not fit to commit)" if res.busy else "a quiet machine"
    text = f"the probe met {met} of {judged} targets on {where}."
    misses = [t for t in probe if t.result == "miss"]
    if misses:
        text += " Missed: " + "; ".join(
            f"{t.target} at {t.streams} stream{'s' if t.streams > 1 else ''} ({_margin(t)})" for t in misses
        ) + "."
    return text


def _targets_table(res: AccuracyResults) -> list[str]:
    lines = [
        "| target | streams | client | probe | vllm bench serve | limit | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in res.targets:
        ms = t.unit == "ms"
        digits = 2 if ms else 1
        bound = "<" if t.target.endswith("under 1 ms") else "≤"
        limit = "n/a" if t.limit is None else f"{bound} {t.limit:.{digits}f} {t.unit}"
        result = {"pass": "pass", "miss": f"**miss** {_margin(t)}", "n/a": "n/a (no figure)"}[t.result]
        theirs = f"{_f(t.vllm, ms, digits)} {t.unit}" if t.vllm is not None else "n/a"
        lines.append(
            f"| {t.target} | {t.streams} | {TOOL_NAMES[t.tool]} | {_f(t.probe, ms, digits)} {t.unit} | {theirs} "
            f"| {limit} | {result} |"
        )
    return lines


def _results_table(res: AccuracyResults) -> list[str]:
    lines = [
        "| streams | client | matched / sent | TTFT err p50 | TTFT err p95 | TTFT err p95 after 1st wave "
        "| ITL err p50 | ITL err p95 | CPU µs/token | probe loop lag p99 | load avg before | others' load during |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res.summary:
        n = s.repeats
        busy = f", **{s.busy_runs} busy**" if s.busy_runs else ""
        lines.append(
            f"| {s.streams} | {TOOL_NAMES[s.tool]} | {s.matched} / {s.sent} "
            f"| {_stat(s.ttft_err_p50_ms, n)} | {_stat(s.ttft_err_p95_ms, n)} "
            f"| {_stat(s.ttft_err_after_first_wave_p95_ms, n)} "
            f"| {_stat(s.itl_err_p50_ms, n)} | {_stat(s.itl_err_p95_ms, n)} "
            f"| {_stat(s.cpu_us_per_token, n, signed=False, digits=1)} "
            f"| {_stat(s.probe_loop_lag_p99_ms, n, signed=False)} "
            f"| {_loads(s.load_before_1min)} | ≤ {max(s.others_max_1min, s.others_mean_max):.2f}{busy} |"
        )
    return lines


def _runs_table(res: AccuracyResults) -> list[str]:
    lines = [
        "| repeat | streams | client | TTFT err p95 | ITL err p95 | CPU µs/token | load avg before / max / after "
        "| others' load 1-min max / mean | attempts | probe verdict, loop lag p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res.runs:
        ld = r.load
        itl = r.ev.itl_error_ms.p95 if r.ev.itl_error_ms else None
        probe = "n/a" if r.probe is None else f"{r.probe.verdict}, {_f(r.probe.loop_lag_p99_ms, False)} ms"
        quiet = "" if ld.quiet else " (busy)"
        lines.append(
            f"| {r.repeat + 1} | {r.concurrency} | {TOOL_NAMES[r.tool]} | {_f(r.ev.ttft_error_ms.p95)} | {_f(itl)} "
            f"| {_f(r.ev.cpu_us_per_token, False, 1)} | {ld.before_1min:.2f} / {ld.max_1min:.2f} / {ld.after_1min:.2f} "
            f"| {ld.others_max_1min:.2f} / {ld.others_mean:.2f}{quiet} | {len(r.discarded) + 1} | {probe} |"
        )
    return lines


def page(res: AccuracyResults, notes: str, results_name: str) -> str:
    """docs/benchmarks/probe-accuracy.md."""
    m = res.meta
    quiet_runs = sum(r.load.quiet for r in res.runs)
    discarded = sum(len(r.discarded) for r in res.runs)
    befores = [r.load.before_1min for r in res.runs]
    lines = [
        "# Probe accuracy against server-side truth, compared with `vllm bench serve`",
        "",
        f"<!-- Generated by benchmarks/probe/accuracy.py from results/{results_name}; change the generator or "
        "the notes file, not this page. -->",
        "",
        "**Question**: how far are the probe's time to first token (TTFT) and inter-token latency (ITL) from the "
        "truth, and what does it cost in CPU, next to `vllm bench serve` run the same way against the same server?",
        "",
        f"**Answer**: {_answer(res)}",
        "",
    ]
    if res.busy or m.smoke or not res.complete:
        why = ["a smoke run (tiny loads)"] if m.smoke else []
        why += [f"{sum(r.busy_runs for r in res.summary)} figure(s) measured while other processes loaded the "
                "machine"] if res.busy else []  # fmt: skip
        why += ["the run did not complete"] if not res.complete else []
        lines += [f"> **Not fit to commit**: {'; '.join(why)}.", ""]
    if res.problems:
        lines += ["Problems in this run:", "", *[f"- {p}" for p in res.problems], ""]
    lines += [
        "## Targets",
        "",
        "On the medians below; errors compare as absolute values. The probe runs with one load process "
        f"(`workers={m.probe_workers}`): these are single-event-loop figures.",
        "",
        *_targets_table(res),
        "",
        f"## Results (median of {m.repeat} repeat(s), range in brackets; errors in ms)",
        "",
        *_results_table(res),
        "",
        "Errors are client minus server truth. \"TTFT err p95 after 1st wave\" leaves out the first `streams` "
        "requests, which open every connection at once. \"probe loop lag p99\" is the probe's own figure from its "
        "report. \"load avg before\" is the kernel's 1-minute load average read just before each repeat's sweep "
        "(range over repeats); \"others' load during\" is the highest load from other processes during those "
        "sweeps (1-minute average or mean over the sweep, whichever is higher; see Conditions).",
        "",
        "## Conditions",
        "",
        f"- Machine: {m.machine.cpus} CPUs ({m.machine.cpu_model}), Linux {m.machine.kernel}; Python "
        f"{m.machine.python}; {m.vllm}; probe {m.probe_version}.",
        f"- Load: the 1-minute load average before each sweep was {_loads(befores)} (limit {m.max_load:.1f}); "
        f"{quiet_runs} of {len(res.runs)} kept sweeps were quiet, {discarded} disturbed sweep(s) were discarded "
        f"and redone (at most {m.retries} redo(s) per sweep).",
        "- A sweep is one client at one stream count. Before it the load average must be under the limit (between "
        "sweeps the benchmark waits for its own previous processes' share to fade). During it a watcher counts "
        "twice a second the tasks runnable or in uninterruptible sleep that belong to neither the benchmark, the "
        "server nor the client; the sweep is redone when that count reached the limit as a 1-minute load average (the "
        "kernel's formula, started from the figure read before the sweep) or as its mean over the sweep. The "
        "kernel's own figure during the sweep, the benchmark's processes included, is kept in the results JSON "
        "(`max_1min`).",
        f"- Measured {m.date_utc}, {m.duration_s / 60:.1f} min in all.",
        "",
        "## Every run",
        "",
        *_runs_table(res),
        "",
        "## How it was measured",
        "",
        f"- **Truth server** (`benchmarks/probe/truth_server.py`): a loopback OpenAI-compatible server in its own "
        f"process, raw asyncio with timer callbacks, time to first token {m.ttft_ms:g} ms and inter-token delay "
        f"{m.itl_ms:g} ms nominal, {m.output_len} output tokens per request. It logs on CLOCK_MONOTONIC the moment "
        "each complete request was in hand (handler entry) and the moment each token event had reached the kernel.",
        "- **Truth is those logged times, not the nominal delays.** TTFT truth = first token written minus handler "
        "entry; ITL truth = gaps between token writes. Error = client-measured minus truth, per request for TTFT "
        "and gap by gap for ITL.",
        "- **Matching**: the server writes its request id into the first token's text (`rid<N>`), which "
        "`vllm bench serve --save-detailed` keeps per request; the probe's prompts carry `[tag:<i>]`, and its batch "
        "mode sends prompt i as request i.",
        f"- **Clients**, one after the other, each against a fresh server, same request count and output length "
        f"({m.requests_single} requests at 1 stream, {m.requests_per_stream} per stream above): "
        "`vllm bench serve` (`--backend vllm --dataset-name random --random-input-len 32 --ignore-eos "
        "--max-concurrency C --save-detailed`); the probe's batch mode through its Python API (`probe`: the "
        "runner the command line uses, with an `on_record` hook that only keeps each record, written after the "
        "run)" + (", and its command line (`probe (command line)`: `run --config <run file>`, records without "
        "every gap, so no ITL error)" if "probe-cli" in m.tools else "") + ". The benchmark builds the probe's "
        "settings as a `Config` and hands them over as a run file (kept per run in the results JSON). The order "
        "of the clients alternates between stream counts.",
        "- **CPU per output token**: the client process's CPU time (`/proc/<pid>/stat`, all threads, sampled "
        "every 50 ms), over the window from its first request to the last token written, divided by the tokens "
        "in that window; start-up and result writing fall outside the window for every client.",
        "",
        "## Findings",
        "",
        notes.strip() if notes.strip() else "_No notes were given for this run (`accuracy.py --notes FILE.md`)._",
        "",
        "## Reproduce",
        "",
        "```bash",
        m.command,
        "```",
        "",
        f"Raw figures, every run and every discarded attempt's load: `results/{results_name}`. See "
        "`benchmarks/probe/README.md`.",
        "",
    ]
    return "\n".join(lines)
