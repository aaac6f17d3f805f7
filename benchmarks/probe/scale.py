"""Scale benchmark: one large batch through the probe's CLI, watching its memory as requests complete.

The probe runs `--mode batch --records` (records streamed to disk) against the
loopback truth server (no truth log, tiny outputs, zero or small delays). A
sampler reads the probe process's RSS from /proc and counts the lines of
records.jsonl as it grows, so the RSS can be read at given request counts
(10K, 50K, 200K by default). Pass: RSS flat (the last checkpoint within a few
MiB of the first) and zero client errors. With zero delays the probe itself is
the bottleneck by design, so its verdict is `inconclusive` (exit 3); that is
expected here and not a failure of this benchmark.

    python benchmarks/probe/scale.py --requests 200000 --out-json docs/benchmarks/results/probe-scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_common import REPO, loadavg, proc_cpu_s, proc_rss_kib, truth_server


@dataclass
class Sample:
    t_s: float
    done: int
    rss_kib: int
    cpu_s: float


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


def at_checkpoints(samples: list[Sample], checkpoints: list[int], total: int) -> list[dict[str, object]]:
    """RSS at the first sample that had seen each count of finished requests, and the peak up to it.

    The last checkpoint is read at 99.5 % of the batch: once every request is done the probe
    builds its report, whose temporary memory is reported apart (peak_rss_after_load_mib)."""
    out: list[dict[str, object]] = []
    for n in checkpoints:
        due = min(n, int(total * 0.995))
        hit = next((i for i, s in enumerate(samples) if s.done >= due), None)
        if hit is None:
            out.append({"requests": n, "reached": False})
            continue
        s = samples[hit]
        peak = max(x.rss_kib for x in samples[: hit + 1])
        out.append(
            {
                "requests": n,
                "reached": True,
                "t_s": s.t_s,
                "requests_seen": s.done,
                "rss_mib": round(s.rss_kib / 1024, 1),
                "peak_rss_mib_so_far": round(peak / 1024, 1),
            }
        )
    return out


@dataclass
class ProbeRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    samples: list[Sample]
    report: dict[str, Any]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=2)
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--itl-ms", type=float, default=0.0)
    p.add_argument("--checkpoints", default="10000,50000,200000")
    p.add_argument("--time-limit", type=float, default=1200.0, help="seconds the probe may run in all")
    p.add_argument("--sample-interval", type=float, default=0.25)
    p.add_argument("--model", default="classroom-tiny")
    p.add_argument("--workdir", help="keep the probe's report here (default: a temp dir)")
    p.add_argument("--probe-src", help="import the probe from this source folder (default: the repository's probe/src)")
    p.add_argument("--out-json", required=True)
    return p.parse_args()


def run_probe(args: argparse.Namespace, workdir: Path) -> ProbeRun:
    env = dict(os.environ)
    src = args.probe_src or str(REPO / "probe" / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    report_dir = workdir / "probe-scale"
    with truth_server(
        None, ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, model=args.model, lifetime_s=args.time_limit + 120
    ) as srv:
        cmd = [
            sys.executable, "-m", "classroom_probe", "run",
            "--base-url", srv.base_url, "--api", "completions", "--model", args.model,
            "--mode", "batch", "--requests", str(args.requests), "--concurrency", str(args.concurrency),
            "--max-tokens", str(args.max_tokens), "--ignore-eos", "--warmup", "0",
            "--duration", str(args.time_limit), "--profile", "lab", "--metrics-url", "off", "--gpu", "off",
            "--report-dir", str(report_dir), "--records", "--quiet",
        ]  # fmt: skip
        t0 = time.monotonic()
        with subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            watcher = Watcher(proc.pid, report_dir / "records.jsonl", args.sample_interval).start()
            try:
                out, err = proc.communicate(timeout=args.time_limit + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate(timeout=10)
            watcher.stop()
        wall = time.monotonic() - t0
    report_path = report_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return ProbeRun(proc.returncode, out, err, wall, watcher.samples, report)


def _number(value: object) -> float:
    # at_checkpoints stores numbers in a mapping of mixed values; say so rather than cast blindly.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def build_result(args: argparse.Namespace, run: ProbeRun, loads: list[list[float]]) -> dict[str, Any]:
    agg = run.report.get("aggregates", {})
    health = run.report.get("probe_health", {})
    samples = run.samples
    cps = at_checkpoints(samples, [int(c) for c in args.checkpoints.split(",")], args.requests)
    under_load = [s.rss_kib for s in samples if s.done < args.requests]
    after_load = [s.rss_kib for s in samples if s.done >= args.requests]
    reached = [c for c in cps if c.get("reached")]
    growth = None
    if len(reached) >= 2:
        growth = round(_number(reached[-1]["rss_mib"]) - _number(reached[0]["rss_mib"]), 1)
    return {
        "config": {k: getattr(args, k) for k in ("requests", "concurrency", "max_tokens", "ttft_ms", "itl_ms")},
        "probe_src": "repository" if args.probe_src is None else "patched copy (--probe-src)",
        "returncode": run.returncode,
        "probe_stdout": run.stdout.strip()[-2000:],
        "probe_stderr": run.stderr.strip()[-2000:],
        "wall_s": round(run.wall_s, 1),
        "requests_ok": agg.get("requests_ok"),
        "failures_total": agg.get("failures_total"),
        "failures_by_kind": agg.get("failures_by_kind"),
        "output_tokens": agg.get("output_tokens"),
        "requests_per_s": agg.get("requests_per_s"),
        "probe_cpu_s": health.get("cpu_s"),
        "probe_loop_lag_ms": health.get("loop_lag_ms"),
        "checkpoints": cps,
        "rss_growth_first_to_last_checkpoint_mib": growth,
        "peak_rss_under_load_mib": round(max(under_load) / 1024, 1) if under_load else None,
        "peak_rss_after_load_mib": round(max(after_load) / 1024, 1) if after_load else None,
        "records_lines": samples[-1].done if samples else 0,
        "loadavg_before": loads[0],
        "loadavg_after": loads[1],
        "cpus": len(os.sched_getaffinity(0)),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rss_series": [asdict(s) for s in samples[:: max(1, len(samples) // 400)]],
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-scale-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        before = loadavg()
        run = run_probe(args, workdir)
        result = build_result(args, run, [before, loadavg()])
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("rss_series", "probe_stdout")}
    print(json.dumps(summary, indent=1))
    # Exit 3 (inconclusive) is the probe saying it was the bottleneck, which a zero-delay batch is by design.
    complete = result["requests_ok"] == args.requests and not result["failures_total"]
    return 0 if run.returncode in (0, 3) and complete else 1


if __name__ == "__main__":
    sys.exit(main())
