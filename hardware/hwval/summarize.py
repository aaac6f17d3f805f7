"""Turns a fetched results folder into docs/hardware-validation/SUMMARY.md. Every figure comes from the files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwval.ansible_run import HOST
from hwval.results import RESULTS_FILE, read_json


def _load(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


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


def _check(checks: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((c for c in checks if c.get("name") == name), None)


def _verdict_word(passed: Any) -> str:
    return {True: "pass", False: "fail", None: "n/a"}.get(passed, str(passed))


def _probe_row(label: str, step: dict[str, Any] | None, results: Path) -> list[str]:
    if not step or not step.get("data"):
        return [label, "not run", _cell(step["detail"]) if step else "step missing"]
    d = step["data"]
    f = dict(d.get("figures") or {})
    if f.get("requests_total") is None and d.get("report_dir"):
        # Results of runs before requests_total was collected: read it from the fetched report.
        report = _load(results / "probe" / Path(d["report_dir"]).name / "report.json") or {}
        f["requests_total"] = (report.get("aggregates") or {}).get("requests_total")
    balance = _check(d.get("checks") or [], "gpu_util_balance_max_ratio")
    failures = f.get("failures_by_kind") or {}
    gpus = ", ".join(f"GPU {k} {fmt(v)} %" for k, v in (f.get("gpu_util_mean_pct") or {}).items()) or "n/a"
    figures = (f"TTFT p95 {fmt(f.get('ttft_p95_ms'))} ms; per-student {fmt(f.get('student_output_tok_s_p50'))} tok/s "
               f"(p50); output {fmt(f.get('output_tok_s'))} tok/s; {fmt(f.get('requests_total'))} requests sent, "
               f"{fmt(f.get('requests_ok'))} ok after warm-up; "
               f"failures {fmt(f.get('failures_total'))}"
               + (f" ({', '.join(f'{k} {v}' for k, v in sorted(failures.items()))})" if failures else "")
               + f"; GPU util {gpus}; balance {_verdict_word(balance.get('passed')) if balance else 'n/a'}")
    return [label, d.get("status", "n/a"), _cell(figures)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _kv_rows(kv: dict[str, Any] | None) -> list[list[str]]:
    if not kv:
        return [["KV capacity", "not compared", "kv.json missing"]]
    c = kv["comparison"]
    within = c.get("within_tolerance")
    verdict = "within 10 %" if within else ("beyond 10 %" if within is False else "n/a")
    return [
        ["KV cache tokens (vLLM log vs preflight)", verdict,
         _cell(f"logged {fmt(c.get('logged_tokens'))}, predicted {fmt(c.get('predicted_tokens'))}, "
               f"ratio {fmt(c.get('tokens_ratio'), 3)}")],
        [f"Maximum concurrency for {fmt(kv['log'].get('tokens_per_request'))} tokens", verdict,
         _cell(f"logged {times(c.get('logged_concurrency'))}, predicted {times(c.get('predicted_concurrency'))}, "
               f"ratio {fmt(c.get('concurrency_ratio'), 3)}")],
        ["KV memory per GPU", "info",
         _cell(f"logged {', '.join(fmt(x, 2) for x in c.get('logged_kv_gib_per_gpu') or []) or 'n/a'} GiB, "
               f"predicted {fmt(c.get('predicted_kv_gib_per_gpu'), 2)} GiB; predicted max sequences "
               f"{fmt(c.get('predicted_max_sequences'))}; log layout {kv['log'].get('layout')}")],
    ]


def _kill_row(step: dict[str, Any] | None) -> list[str]:
    if not step or not step.get("data") or "killed" not in step["data"]:
        return ["Kill one TP worker (kill -9)", step["status"] if step else "not run",
                _cell(step["detail"]) if step else "step missing"]
    d = step["data"]
    kinds = d.get("failures_by_kind") or {}
    expected = "error_after_tokens" in kinds
    left = d.get("left_in_session_after_exit") or []
    api = (f"API exit code {d['api_exit_code']} {fmt(d.get('api_exit_after_s'))} s after the kill"
           if d.get("api_exit_code") is not None else "API still running when the step stopped waiting")
    text = (f"killed {d['killed']['cmdline'].split()[0]}; {api}; probe failures "
            f"{', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}; "
            f"{len(left)} process(es) of the engine left after the API exited")
    return ["Kill one TP worker (kill -9)", "as expected" if expected else "unexpected", _cell(text)]


def _balance_rows(steps: dict[str, dict[str, Any]], matmul: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    for label, name in (("Balance, vLLM TP=2 (classroom 24)", "probe_c24"),
                        ("Balance, vLLM TP=1 on GPU 0, GPU 1 idle", "probe_tp1_imbalance")):
        step = steps.get(name)
        checks = (step or {}).get("data", {}).get("checks") or []
        c = _check(checks, "gpu_util_balance_max_ratio")
        rows.append([label, _verdict_word(c.get("passed")) if c else "not run",
                     _cell(f"{c.get('detail')} (limit {c.get('limit')})" if c else (step or {}).get("detail", ""))])
    for run in (matmul or {}).get("runs", []):
        c = _check(run.get("checks") or [], "gpu_util_balance_max_ratio")
        rows.append([f"Balance, matmul loop on {run['name']}", run.get("status", "n/a"),
                     _cell(f"{c.get('detail')} (limit {c.get('limit')})" if c else run.get("reason", ""))])
    return rows


def _lab_differences(steps: dict[str, dict[str, Any]], host: dict[str, Any] | None) -> list[str]:
    out = []
    serve = steps.get("serve_tp2", {}).get("data", {})
    if serve.get("healthy_after_s") is not None:
        out.append(f"- Engine start: healthy {fmt(serve['healthy_after_s'])} s after launch (torch.compile and CUDA "
                   "graphs on the GPU; the lab's CPU engine runs eager).")
    tp1 = steps.get("serve_tp1", {}).get("data", {})
    if tp1.get("healthy_after_s") is not None:
        out.append(f"- TP=1 engine on GPU 0: healthy after {fmt(tp1['healthy_after_s'])} s.")
    c24 = steps.get("probe_c24", {}).get("data", {}).get("figures", {})
    if c24:
        out.append(f"- GPU sampling: source `{c24.get('gpu_source')}` (the lab has no GPU: recorded as absent); "
                   f"`/metrics` scraped: {fmt(c24.get('metrics_scraped'))}; token cross-check: "
                   f"{c24.get('token_cross_check')}.")
    kill = steps.get("kill", {}).get("data", {})
    if kill.get("api_exit_code") is not None:
        out.append(f"- Engine death: the API process exited with code {kill['api_exit_code']} (the unit restarts on "
                   "any exit, so the code does not matter to systemd).")
    render = steps.get("render", {}).get("data", {})
    if render.get("tp2", {}).get("exec_start"):
        out.append(f"- Command line (rendered by the role, run as-is): `{render['tp2']['exec_start']}`.")
    for key, label in (("versions", "driver's Python"), ("vllm_python_versions", "vLLM's Python")):
        if host and host.get(key):
            out.append(f"- Versions ({label}): `{host[key]}`.")
    return out


def render_summary(results: Path) -> str:
    doc = _load(results / RESULTS_FILE)
    if doc is None:
        raise FileNotFoundError(f"{results / RESULTS_FILE} not found")
    steps = {s["name"]: s for s in doc["steps"]}
    preflight = _load(results / "preflight" / HOST / "preflight.json")
    host = _load(results / "host.json")
    lines = ["# GPU validation summary", "",
             f"Generated by `hardware/summarize.py` from the results of the run started {doc['started_at']} "
             f"(finished {doc.get('finished_at') or 'not finished'}). Do not edit by hand.", ""]
    if host:
        lines += [f"GPUs: {'; '.join(host.get('gpus') or [])}", ""]
    rows: list[list[str]] = []
    if preflight:
        counts = preflight.get("counts") or {}
        rows.append(["Preflight (gpu profile, real nvidia-smi)", str(preflight.get("verdict")),
                     _cell(f"pass {counts.get('pass')}, warn {counts.get('warn')}, fail {counts.get('fail')}, "
                           f"skip {counts.get('skip')}; failed: {', '.join(preflight.get('failed') or []) or 'none'}; "
                           f"warned: {', '.join(preflight.get('warned') or []) or 'none'}")])
    else:
        rows.append(["Preflight", steps.get("preflight", {}).get("status", "not run"),
                     _cell(steps.get("preflight", {}).get("detail", ""))])
    rows += _kv_rows(_load(results / "kv.json"))
    rows.append(_probe_row("Probe, classroom 24 students", steps.get("probe_c24"), results))
    rows.append(_probe_row("Probe, classroom 48 students", steps.get("probe_c48"), results))
    rows.append(_probe_row("Probe, batch", steps.get("probe_batch"), results))
    rows.append(_kill_row(steps.get("kill")))
    rows += _balance_rows(steps, _load(results / "matmul-balance.json"))
    lines += _table(["What", "Verdict", "Figures"], rows)
    lines += ["", "## What differed from the lab", ""] + (_lab_differences(steps, host) or ["- nothing recorded"])
    lines += ["", "## Steps", ""]
    lines += _table(["Step", "Status", "Seconds", "Detail"],
                    [[s["name"], s["status"], fmt(s["seconds"]), _cell(s["detail"])] for s in doc["steps"]])
    lines += ["", "Reports: `probe/<run>/report.{json,md,html}`; raw step data: `results.json`.", ""]
    return "\n".join(lines)


def write_summary(results: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_summary(results))
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2)
