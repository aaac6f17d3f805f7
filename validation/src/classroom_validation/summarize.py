"""SUMMARY.md of a results folder. Every figure comes from the files; results of the earlier
one-process driver (schema 1, the committed 2x H200 run) read the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classroom_validation.expectations import (
    balance_check,
    class_steps,
    judge,
    main_engine,
    startup_of,
    step_data,
)
from classroom_validation.results import RunResults, read_object
from classroom_validation.startup import HEALTHY_LABEL, MILESTONES, Startup


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def times(value: Any) -> str:
    return "n/a" if value is None else f"{fmt(value, 2)}x"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict_word(passed: Any) -> str:
    return {True: "pass", False: "fail", None: "n/a"}.get(passed, str(passed))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _probe_row(label: str, step: dict[str, Any] | None, results: Path) -> list[str]:
    if not step or not step.get("data"):
        return [label, "not run", _cell(step["detail"]) if step else "step missing"]
    d = step["data"]
    f = dict(d.get("figures") or {})
    if f.get("requests_total") is None and d.get("report_dir"):
        # Results collected before requests_total was a key figure: read it from the copied report.
        report = read_object(results / "probe" / Path(d["report_dir"]).name / "report.json")
        f["requests_total"] = (report.get("aggregates") or {}).get("requests_total")
    balance = balance_check(d)
    failures = f.get("failures_by_kind") or {}
    gpus = ", ".join(f"GPU {k} {fmt(v)} %" for k, v in (f.get("gpu_util_mean_pct") or {}).items()) or "n/a"
    figures = (f"TTFT p95 {fmt(f.get('ttft_p95_ms'))} ms; per-student {fmt(f.get('student_output_tok_s_p50'))} tok/s "
               f"(p50); output {fmt(f.get('output_tok_s'))} tok/s; {fmt(f.get('requests_total'))} requests sent, "
               f"{fmt(f.get('requests_ok'))} ok after warm-up; failures {fmt(f.get('failures_total'))}"
               + (f" ({', '.join(f'{k} {v}' for k, v in sorted(failures.items()))})" if failures else "")
               + f"; GPU util {gpus}; balance {_verdict_word(balance.get('passed')) if balance else 'n/a'}")
    return [label, d.get("status", "n/a"), _cell(figures)]


def _kv_rows(kv: dict[str, Any]) -> list[list[str]]:
    if not kv:
        return [["KV capacity", "not compared", "kv.json missing"]]
    c = kv.get("comparison") or {}
    log = kv.get("log") or {}
    within = c.get("within_tolerance")
    verdict = "within 10 %" if within else ("beyond 10 %" if within is False else "n/a")
    return [
        ["KV cache tokens (vLLM log vs preflight)", verdict,
         _cell(f"logged {fmt(c.get('logged_tokens'))}, predicted {fmt(c.get('predicted_tokens'))}, "
               f"ratio {fmt(c.get('tokens_ratio'), 3)}")],
        [f"Maximum concurrency for {fmt(log.get('tokens_per_request'))} tokens", verdict,
         _cell(f"logged {times(c.get('logged_concurrency'))}, predicted {times(c.get('predicted_concurrency'))}, "
               f"ratio {fmt(c.get('concurrency_ratio'), 3)}")],
        ["KV memory per GPU", "info",
         _cell(f"logged {', '.join(fmt(x, 2) for x in c.get('logged_kv_gib_per_gpu') or []) or 'n/a'} GiB, "
               f"predicted {fmt(c.get('predicted_kv_gib_per_gpu'), 2)} GiB; predicted max sequences "
               f"{fmt(c.get('predicted_max_sequences'))}; log layout {log.get('layout')}")],
    ]


def _kill_row(step: dict[str, Any] | None) -> list[str]:
    label = "Kill one TP worker (kill -9)"
    if not step or "killed" not in (step.get("data") or {}):
        return [label, step["status"] if step else "not run", _cell(step["detail"]) if step else "step missing"]
    d = step["data"]
    kinds = d.get("failures_by_kind") or {}
    left = d.get("left_in_session_after_exit") or []
    api = (f"API exit code {d['api_exit_code']} {fmt(d.get('api_exit_after_s'))} s after the kill"
           if d.get("api_exit_code") is not None else "API still running when the step stopped waiting")
    text = (f"killed {d['killed']['cmdline'].split()[0]}; {api}; probe failures "
            f"{', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}; "
            f"{len(left)} process(es) of the engine left after the API exited")
    return [label, "as expected" if "error_after_tokens" in kinds else "unexpected", _cell(text)]


def _balance_rows(steps: dict[str, dict[str, Any]], matmul: dict[str, Any]) -> list[list[str]]:
    rows = []
    sizes = class_steps(steps)
    size = main_engine(steps).removeprefix("tp")
    pairs = [(f"Balance, vLLM TP={size} (classroom {sizes[0][0]})", sizes[0][1])] if sizes else []
    for label, name in [*pairs, ("Balance, vLLM TP=1 on GPU 0, GPU 1 idle", "probe_tp1_imbalance")]:
        step = steps.get(name) or {}
        c = balance_check(step.get("data") or {})
        rows.append([label, _verdict_word(c.get("passed")) if c else "not run",
                     _cell(f"{c.get('detail')} (limit {c.get('limit')})" if c else step.get("detail", ""))])
    for run in matmul.get("runs") or []:
        c = balance_check(run)
        rows.append([f"Balance, matmul loop on {run['name']}", run.get("status", "n/a"),
                     _cell(f"{c.get('detail')} (limit {c.get('limit')})" if c else run.get("reason", ""))])
    return rows


REPORTED_LABELS = {
    "model_load_s": "vLLM's figure: model loading",
    "dynamo_transform_s": "vLLM's figure: Dynamo bytecode transform",
    "graph_compile_s": "vLLM's figure: Inductor compile",
    "graph_cache_load_s": "vLLM's figure: compiled graph from cache",
    "torch_compile_total_s": "vLLM's figure: torch.compile in total",
    "cuda_graphs_s": "vLLM's figure: CUDA graphs",
    "init_engine_s": "vLLM's figure: init engine (profile, KV cache, warm-up)",
}


def _startup_rows(steps: dict[str, dict[str, Any]], results: Path) -> tuple[list[str], list[list[str]], list[str]]:
    main = main_engine(steps)
    columns = [(f"serve_{main}", "First start (compile cache empty)"),
               (f"restart_{main}", "Restart (compile cache kept)")]
    starts = {name: startup_of(steps, name, results) for name, _ in columns}
    shown = [(name, label) for name, label in columns if starts[name] is not None]
    if not shown:
        return [], [], []
    labels = {m.key: m.label for m in MILESTONES} | {"healthy": HEALTHY_LABEL}
    keys = [k for k in labels if any(p.key == k for s in starts.values() if s for p in s.phases)]
    rows = []
    for key in keys:
        cells = []
        for name, _ in shown:
            phase = next((p for p in (starts[name] or Startup("none")).phases if p.key == key), None)
            cells.append(f"{fmt(phase.seconds)} s (at {fmt(phase.end_s)} s)" if phase else "not reached")
        rows.append([labels[key], *cells])
    rows.append(["Healthy after launch", *[f"{fmt(step_data(steps, n).get('healthy_after_s'))} s" for n, _ in shown]])
    for key, label in REPORTED_LABELS.items():
        values = [(starts[n] or Startup("none")).reported.get(key) for n, _ in shown]
        if any(v is not None for v in values):
            rows.append([label, *[f"{fmt(v, 2)} s" if v is not None else "not logged" for v in values]])
    rows.append(["Compile cache", *[(starts[n] or Startup("none")).compile_cache for n, _ in shown]])
    notes = [f"- {label}: times count from "
             + ("launch" if (starts[n] or Startup("none")).clock == "launch" else
                "vLLM's first log line (this log has no launch stamps, so the time before it is not split)")
             + "." for n, label in shown]
    return ["Phase (the time up to its last line)", *[label for _, label in shown]], rows, notes


def _lab_differences(steps: dict[str, dict[str, Any]], host: dict[str, Any], first_class: str | None) -> list[str]:
    out = []
    main = main_engine(steps)
    serve = step_data(steps, f"serve_{main}")
    if serve.get("healthy_after_s") is not None:
        out.append(f"- Engine start: healthy {fmt(serve['healthy_after_s'])} s after launch (torch.compile and CUDA "
                   "graphs on the GPU; the lab's CPU engine runs eager).")
    restart = step_data(steps, f"restart_{main}")
    if restart.get("healthy_after_s") is not None:
        out.append(f"- Restart with the compile cache kept: healthy {fmt(restart['healthy_after_s'])} s after launch.")
    tp1 = step_data(steps, "serve_tp1")
    if tp1.get("healthy_after_s") is not None:
        out.append(f"- TP=1 engine on GPU 0: healthy after {fmt(tp1['healthy_after_s'])} s.")
    figures = step_data(steps, first_class).get("figures") or {} if first_class else {}
    if figures:
        out.append(f"- GPU sampling: source `{figures.get('gpu_source')}` (the lab has no GPU: recorded as absent); "
                   f"`/metrics` scraped: {fmt(figures.get('metrics_scraped'))}; token cross-check: "
                   f"{figures.get('token_cross_check')}.")
    kill = step_data(steps, "kill")
    if kill.get("api_exit_code") is not None:
        out.append(f"- Engine death: the API process exited with code {kill['api_exit_code']} (the unit restarts on "
                   "any exit, so the code does not matter to systemd).")
    render = step_data(steps, "render")
    if (render.get(main) or {}).get("exec_start"):
        out.append(f"- Command line (rendered by the role, run as-is): `{render[main]['exec_start']}`.")
    versions = host.get("versions")
    if isinstance(versions, dict):
        versions = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    if versions:
        out.append(f"- Versions: `{versions}`.")
    return out


def render_summary(results: Path) -> str:
    run = RunResults.load(results)
    steps: dict[str, dict[str, Any]] = {s.name: {"status": s.status, "detail": s.detail, "data": s.data}
                                         for s in run.steps}
    preflight_path = next(iter(sorted((results / "preflight").glob("*/preflight.json"))), None)
    preflight = read_object(preflight_path) if preflight_path else {}
    host = read_object(results / "host.json")
    lines = ["# GPU validation summary", "",
             f"Generated by `python -m classroom_validation summarize` from the results of the run started "
             f"{run.started_at} (finished {run.finished_at or 'not finished'}). Do not edit by hand.", ""]
    if host.get("gpus"):
        lines += [f"GPUs: {'; '.join(host['gpus'])}", ""]
    rows: list[list[str]] = []
    if preflight:
        counts = preflight.get("counts") or {}
        rows.append([f"Preflight ({preflight.get('profile', 'gpu')} profile, the host's nvidia-smi)",
                     str(preflight.get("verdict")),
                     _cell(f"pass {counts.get('pass')}, warn {counts.get('warn')}, fail {counts.get('fail')}, "
                           f"skip {counts.get('skip')}; failed: {', '.join(preflight.get('failed') or []) or 'none'}; "
                           f"warned: {', '.join(preflight.get('warned') or []) or 'none'}")])
    else:
        rows.append(["Preflight", steps.get("preflight", {}).get("status", "not run"),
                     _cell(steps.get("preflight", {}).get("detail", ""))])
    rows += _kv_rows(read_object(results / "kv.json"))
    sizes = class_steps(steps)
    rows += [_probe_row(f"Probe, classroom {n} students", steps.get(name), results) for n, name in sizes]
    rows.append(_probe_row("Probe, batch", steps.get("probe_batch"), results))
    rows.append(_kill_row(steps.get("kill")))
    rows += _balance_rows(steps, read_object(results / "matmul-balance.json"))
    lines += _table(["What", "Verdict", "Figures"], rows)
    header, start_rows, notes = _startup_rows(steps, results)
    if start_rows:
        lines += ["", "## Engine start: where the time to a healthy server goes", ""]
        lines += [*_table(header, start_rows), "", *notes]
    failed, found = judge(results)
    lines += ["", "## Expectations", ""]
    lines += _table(["Expectation", "Met", "Detail"],
                    [[e.what, {True: "yes", False: "**no**", None: "not run"}[e.met], _cell(e.detail)] for e in found])
    if failed:
        lines += ["", f"Failed steps: {', '.join(failed)}."]
    lines += ["", "## What differed from the lab", ""]
    lines += _lab_differences(steps, host, sizes[0][1] if sizes else None) or ["- nothing recorded"]
    lines += ["", "## Steps", ""]
    lines += _table(["Step", "Status", "Seconds", "Detail"],
                    [[s.name, s.status, fmt(s.data.get("run_seconds", s.seconds)), _cell(s.detail)] for s in run.steps])
    lines += ["", "Reports: `probe/<run>/report.{json,md,html}`; raw step data: `results.json`.", ""]
    return "\n".join(lines)


def write_summary(results: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_summary(results))
    return out
