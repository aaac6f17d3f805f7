"""The checks a run is judged by: stable IDs, plain-language names and what to change when one fails.

The IDs never change meaning (documentation pages anchor on them); a new check gets a new ID.
`kind` says what a failure can be blamed on: when the probe's own health check fails, failing
`latency` and `throughput` checks are void (the probe may have slowed them down), while `server`
and `gpu` failures still fail the run.
"""

from dataclasses import dataclass, replace
from typing import Literal

CheckKind = Literal["server", "latency", "throughput", "gpu", "probe"]


@dataclass(frozen=True, slots=True)
class CheckInfo:
    id: str
    title: str
    unit: str
    kind: CheckKind
    bound: Literal["max", "min"]  # the limit is a maximum or a minimum
    measures: str
    what_to_change: str


CATALOGUE: tuple[CheckInfo, ...] = (
    CheckInfo(
        "failures_max", "Failed requests", "requests", "server", "max",
        "requests that failed in any way, warm-up and drain included",
        "Read the failures by kind. http_503 or http_429: the server turned load away (fewer students, more GPUs, "
        "or a larger max_num_seqs in vLLM). error_after_tokens or closed_without_done: the engine died or restarted "
        "mid-answer (read the server's log). connect_refused or connect_error: nothing listened (is the service up?). "
        "read_timeout: answers stalled longer than read_timeout. drain_timeout: answers still running when the "
        "run ended (raise drain_timeout or lower the load)."),
    CheckInfo(
        "min_requests", "Enough answers to judge", "requests", "throughput", "min",
        "successful requests in the measured window",
        "Run longer (duration), with more students, or a lower min_requests; when requests failed, fix the failed "
        "requests first."),
    CheckInfo(
        "ttft_p95_ms_max", "Wait for the first word (TTFT, p95)", "ms", "latency", "max",
        "95th percentile of the time from sending a question to the first word of the answer",
        "The server queues questions: serve fewer students per box, use more GPUs (tensor or data parallelism), "
        "shorten the prompts or enable prefix caching. A growing 'waiting' line in the requests plot shows the "
        "queue."),
    CheckInfo(
        "student_output_tok_s_min", "Answer speed per student (median)", "tok/s", "throughput", "min",
        "median over students of the speed at which their answers streamed",
        "Answers stream too slowly: use a smaller or quantised model, more GPUs, or fewer students at once. A KV "
        "cache near 100 % or preemptions mean the batch does not fit the GPU memory."),
    CheckInfo(
        "gpu_util_mean_min_pct", "Every GPU is used", "%", "throughput", "min",
        "lowest mean utilisation of any GPU over the measured window",
        "A GPU stayed nearly idle: make the server use every GPU (vLLM's tensor_parallel_size, or one replica per "
        "GPU), check CUDA_VISIBLE_DEVICES, or raise the load; on a box without GPUs set gpu to off."),
    CheckInfo(
        "gpu_util_balance_max_ratio", "GPUs share the work evenly", "x", "gpu", "max",
        "busiest GPU's mean utilisation divided by the least busy one's (an idle GPU makes it infinite)",
        "One GPU does most of the work: serve one model across all GPUs with tensor parallelism instead of one "
        "model per GPU, or spread Ollama's models over the GPUs."),
    CheckInfo(
        "probe_loop_lag_p99_ms_max", "The probe kept up (loop lag, p99)", "ms", "probe", "max",
        "how long answers waited for the probe's own event loop, 99th percentile over the run's time",
        "The probe machine was too busy to time answers exactly: give the probe more worker processes "
        "(workers), run it where cores are free, stop other jobs there, or lower the load. Latency and speed "
        "failures of this run are void; failed requests still count."),
    CheckInfo(
        "ramp_largest_passing_students", "Largest class that meets the SLO (ramp)", "students", "throughput", "min",
        "largest number of students at which a ramp step met every SLO check",
        "Even the first step missed the SLO: start the ramp lower (ramp_start) or fix the failing check listed in "
        "the ramp table for that step."),
)

# Every "what to change" ends with the check's entry in the project's troubleshooting guide, so the
# role's failure message, checks.txt and the reports all point a teacher at the longer explanation.
TROUBLESHOOTING = "docs/TROUBLESHOOTING.md"


def troubleshooting_link(check_id: str) -> str:
    return f"{TROUBLESHOOTING}#{check_id}"


CATALOGUE = tuple(
    replace(c, what_to_change=f"{c.what_to_change} More: {troubleshooting_link(c.id)}") for c in CATALOGUE
)

CHECKS: dict[str, CheckInfo] = {c.id: c for c in CATALOGUE}
CHECK_IDS: tuple[str, ...] = tuple(CHECKS)
VOIDABLE_KINDS: frozenset[str] = frozenset({"latency", "throughput"})
