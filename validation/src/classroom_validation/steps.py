"""The validation's steps, one `python -m classroom_validation <step>` call each from playbooks/validate.yml.

A step records its result in results.json and never ends the run: an exception is a failed step, a
missing prerequisite (no healthy engine, no render) a skipped one. The roles' own parts (preflight,
render, the gate) run in the playbook; the steps here record what they wrote and do what a playbook
cannot: start vLLM from the rendered run.sh, time its start, kill a worker under load, load GPUs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from classroom_validation import engine as eng
from classroom_validation.kvcompare import compare_kv
from classroom_validation.kvlog import parse_kv_log
from classroom_validation.probe_run import (
    ProbeLoad,
    check,
    finish_probe,
    outcome_from_role,
    probe_command,
    start_probe,
)
from classroom_validation.results import RunResults, StepResult, now_iso, read_object, write_json
from classroom_validation.smi import SMI, compute_apps, gpu_indices, memory_used, run_smi
from classroom_validation.startup import parse_startup

StepOut = tuple[str, str, dict[str, Any]]  # status, detail, data
VERSIONS_OF = ("vllm", "torch", "transformers", "tokenizers", "ansible-core", "classroom_probe", "classroom_validation",
               "xgrammar", "nvidia-ml-py", "aiohttp", "triton", "flashinfer-python")
# Marks the folders the kit created: only those are ever emptied.
MARK = ".classroom-validation"
# Folders the rendered environment names that the role's install would create on a real box.
STATE_VARS = ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT")


class Skip(Exception):
    """The step cannot run: something it needs did not happen (no render, no healthy engine, one GPU)."""


@dataclass(frozen=True)
class Paths:
    root: Path  # everything the run writes on the host lives under it

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def state(self) -> Path:
        return self.root / "run"

    @property
    def render(self) -> Path:
        """What vllm_server's render entry point wrote, one folder per engine (kept across runs)."""
        return self.root / "render"

    @property
    def gate(self) -> Path:
        """The concurrency_probe role's report folders, one per run name (kept across runs)."""
        return self.root / "gate"


def run_step(paths: Paths, name: str, body: Callable[[], StepOut]) -> StepResult:
    """Run one step and record it, whatever happens inside."""
    results = RunResults.load(paths.results)
    started, t0 = now_iso(), time.monotonic()
    try:
        status, detail, data = body()
        result = StepResult(name, status, started, round(time.monotonic() - t0, 1), detail, data)
    except Skip as exc:
        result = StepResult(name, "skipped", started, 0.0, str(exc))
    except Exception as exc:  # a broken step is a result, never the end of the run
        result = StepResult(name, "failed", started, round(time.monotonic() - t0, 1), f"{type(exc).__name__}: {exc}")
    results.record(result)
    return result


def stop_all(paths: Paths) -> list[str]:
    """Stop every engine of this run that still has live processes; their names."""
    names = eng.running_engines(paths.state)
    for name in names:
        eng.stop(paths.state, name)
    return names


class Refused(Exception):
    """The run cannot begin here without risking files that are not the validation's."""


def begin(paths: Paths, settings: dict[str, Any]) -> list[str]:
    """A new, empty results folder; engines a previous run left behind are stopped first. Only folders this
    kit created (they hold its mark) are ever emptied."""
    if len(paths.root.resolve().parts) < 3:
        raise Refused(f"{paths.root} is too close to / for a folder the validation empties: use e.g. "
                      "/var/tmp/classroom-validation")
    for folder in (paths.results, paths.state):
        if folder.exists() and any(folder.iterdir()) and not (folder / MARK).exists():
            raise Refused(f"{folder} exists and is not the validation's: choose another gpu_validation_root")
    stopped = stop_all(paths)
    for folder in (paths.results, paths.state):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / MARK).write_text("made by classroom_validation; emptied by its next run\n")
    RunResults(paths.results, settings=settings).save()
    return stopped


def host(paths: Paths, smi: str = SMI) -> StepOut:
    data: dict[str, Any] = {"platform": platform.platform(), "python": sys.executable}
    data["nvidia_smi_L"] = run_smi(["-L"], smi).strip().splitlines()
    data["gpus"] = run_smi(["--query-gpu=index,name,memory.total,memory.used,driver_version",
                            "--format=csv,noheader"], smi).strip().splitlines()
    versions: dict[str, str | None] = {}
    for name in VERSIONS_OF:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    data["versions"] = versions
    data["compute_apps_before"] = compute_apps(smi)
    write_json(paths.results / "host.json", data)
    return "ok", f"{len(data['nvidia_smi_L'])} GPUs", data


def preflight_file(results: Path, host_name: str = "") -> Path | None:
    """gpu_preflight's summary: <results>/preflight/<inventory_hostname>/preflight.json."""
    if host_name:
        path = results / "preflight" / host_name / "preflight.json"
        return path if path.is_file() else None
    return next(iter(sorted((results / "preflight").glob("*/preflight.json"))), None)


def record_preflight(paths: Paths, host_name: str, text: str | None = None) -> StepOut:
    """The role's summary: `text` when given (it was written on the controller), else the results' copy."""
    if text is not None and text.strip():
        write_json(paths.results / "preflight" / host_name / "preflight.json", json.loads(text))
    path = preflight_file(paths.results, host_name)
    if path is None:
        return "failed", f"the gpu_preflight role wrote no summary for {host_name}", {}
    summary = read_object(path)
    data = {k: summary.get(k) for k in ("verdict", "failed", "warned", "estimate")}
    return "ok", f"preflight verdict {summary.get('verdict')}", data


def record_render(paths: Paths, names: list[str]) -> StepOut:
    """The rendered files, copied into the results beside what they produced."""
    data: dict[str, Any] = {}
    for name in names:
        source, folder = paths.render / name, paths.results / "render" / name
        if source.is_dir():
            shutil.copytree(source, folder, dirs_exist_ok=True)
        exec_start = folder / "exec-start.txt"
        environment = folder / "environment"
        data[name] = {"run_sh": (folder / "run.sh").is_file(),
                      "exec_start": exec_start.read_text().strip() if exec_start.is_file() else None,
                      "environment": environment.read_text() if environment.is_file() else None}
    missing = [n for n in names if not data[n]["run_sh"]]
    if missing:
        return "failed", f"no run.sh rendered for {', '.join(missing)}", data
    return "ok", f"rendered {' and '.join(names)}", data


def wait_gpus_free(smi: str, timeout: float = 90.0) -> list[dict[str, Any]]:
    """GPU processes still there after `timeout` (a crashed engine's leftovers, another user's job)."""
    deadline = time.monotonic() + timeout
    apps = compute_apps(smi)
    while apps and time.monotonic() < deadline:
        time.sleep(2)
        apps = compute_apps(smi)
    return apps


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def compile_caches(env: dict[str, str]) -> list[Path]:
    """Where a start leaves compiled work for the next: vLLM's torch.compile cache (VLLM_CACHE_ROOT) and
    the kernel caches under HOME (Triton, FlashInfer and torch extension builds)."""
    folders = [Path(env["VLLM_CACHE_ROOT"])] if env.get("VLLM_CACHE_ROOT") else []
    if env.get("HOME"):
        folders += [Path(env["HOME"]) / ".cache", Path(env["HOME"]) / ".triton"]
    return folders


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


@dataclass(frozen=True)
class Serve:
    name: str  # the render folder (tp2, tp1)
    step: str  # serve_tp2, restart_tp2, ...
    url: str
    timeout: float
    cold: bool  # empty the compile caches first: a first start on a fresh box
    inherit_env: bool = False
    smi: str = SMI

    @property
    def log_name(self) -> str:
        # serve_tp2 -> vllm-tp2.log (the name earlier results use), restart_tp2 -> vllm-restart_tp2.log
        return f"vllm-{self.name}.log" if self.step == f"serve_{self.name}" else f"vllm-{self.step}.log"


def serve(paths: Paths, s: Serve) -> StepOut:
    render = paths.render / s.name
    if not (render / "run.sh").is_file():
        raise Skip(f"no rendered run.sh in render/{s.name}")
    data: dict[str, Any] = {}
    previous = eng.read_state(paths.state, s.name)
    if previous is not None and previous.running:
        # A restart, as the unit's: the same engine stopped, then started again with its caches.
        stopped = eng.stop(paths.state, s.name)
        data["stopped_before"] = {"exit_code": stopped.exit_code if stopped else None}
    if eng.health_code(s.url) is not None:
        return "failed", f"{s.url} already answers: another server holds the port", data
    data["gpu_apps_before"] = wait_gpus_free(s.smi)
    env_vars = eng.read_environment(render / "environment")
    for var in STATE_VARS:
        if env_vars.get(var):
            Path(env_vars[var]).mkdir(parents=True, exist_ok=True)
    caches = compile_caches(env_vars)
    kept_outside = [f for f in caches if not f.resolve().is_relative_to(paths.root.resolve())]
    if s.cold:
        # Only what the validation owns is emptied: a state folder set elsewhere keeps its caches.
        for folder in caches:
            if folder not in kept_outside:
                _fresh(folder)
    data["cache"] = {"mode": "cold" if s.cold else "kept", "not_emptied": [str(f) for f in kept_outside if s.cold],
                     "bytes_before": {str(f): _tree_bytes(f) for f in caches}}
    # The unit has PrivateTmp=true: every start sees an empty /tmp, so caches kept there do not count.
    tmpdir = _fresh(paths.state / f"tmp-{s.step}")
    log = paths.results / s.log_name
    state = eng.launch(s.name, render / "run.sh", log, paths.state, env=eng.engine_env(tmpdir, s.inherit_env),
                       tmpdir=tmpdir)
    data.update(command=["sh", str(render / "run.sh")], log=log.name, tmpdir=str(tmpdir), inherit_env=s.inherit_env)
    try:
        data["healthy_after_s"] = eng.wait_healthy(paths.state, s.name, s.url, s.timeout)
    except RuntimeError as exc:
        data["log_tail"] = log.read_text(errors="replace")[-4000:] if log.is_file() else ""
        final = eng.stop(paths.state, s.name)
        data["exit_code"] = final.exit_code if final else None
        data["startup"] = parse_startup(data["log_tail"]).to_dict()
        return "failed", str(exc), data
    text = log.read_text(errors="replace")
    startup = parse_startup(text, data["healthy_after_s"])
    data["startup"] = startup.to_dict()
    data["cache"]["bytes_after"] = {str(f): _tree_bytes(f) for f in caches}
    data["kv_log"] = parse_kv_log(text).to_dict()
    data["gpu_memory_used_mib"] = memory_used(s.smi)
    data["pid"] = state.pid
    return "ok", f"healthy after {data['healthy_after_s']} s (compile cache {startup.compile_cache})", data


def kv_compare(paths: Paths, host_name: str, start_step: str, log_name: str) -> StepOut:
    summary = preflight_file(paths.results, host_name)
    started = RunResults.load(paths.results).step(start_step)
    if summary is None or started is None or started.status != "ok":
        raise Skip(f"needs the preflight summary and a healthy first start ({start_step})")
    preflight = read_object(summary)
    if not (preflight.get("estimate") or {}).get("expected_vllm_log"):
        raise Skip(f"the preflight made no KV prediction (profile {preflight.get('profile')}: no GPU checked)")
    parsed = parse_kv_log((paths.results / log_name).read_text(errors="replace"))
    comparison = compare_kv(preflight, parsed)
    data = {"comparison": comparison.to_dict(), "log": parsed.to_dict()}
    write_json(paths.results / "kv.json", data)
    return ("ok" if comparison.tokens_ratio is not None else "failed"), comparison.detail, data


def engine_status(paths: Paths, name: str, url: str) -> dict[str, Any]:
    state = eng.read_state(paths.state, name)
    running = bool(state and state.running)
    return {"engine": name, "running": running, "healthy": running and eng.health_code(url) == 200}


def record_gate(paths: Paths, run: str, url: str, engine: str) -> StepOut:
    since = RunResults.load(paths.results).started_at
    outcome = outcome_from_role(run, paths.gate / run, paths.results / "probe" / run, since)
    if outcome is None:
        if not engine_status(paths, engine, url)["healthy"]:
            raise Skip(f"no healthy engine {engine}: the gate did not run")
        return "failed", f"the concurrency_probe role wrote no report under gate/{run}", {}
    balance = check(outcome, "gpu_util_balance_max_ratio")
    detail = f"gate {outcome.status}"
    if balance:
        detail += f"; balance check {balance.get('passed')}: {balance.get('detail')}"
    data = outcome.to_dict()
    report = read_object(Path(outcome.report_dir) / "report.json")
    with contextlib.suppress(TypeError, ValueError):  # the run's own duration, from its report
        data["run_seconds"] = round((datetime.fromisoformat(str(report.get("finished_at")))
                                     - datetime.fromisoformat(str(report.get("started_at")))).total_seconds(), 1)
    return ("failed" if outcome.status == "error" else "ok"), detail, data


@dataclass(frozen=True)
class Kill:
    name: str
    url: str
    model: str
    students: int
    after_s: float
    duration_s: float
    max_tokens: int
    smi: str = SMI


def kill(paths: Paths, k: Kill) -> StepOut:
    state = eng.read_state(paths.state, k.name)
    if state is None or not state.running or state.pid is None:
        raise Skip(f"no engine {k.name} running")
    load = ProbeLoad("kill", "classroom", k.max_tokens, students=k.students, duration=k.duration_s, warmup=0.0)
    report_dir = paths.results / "probe" / "kill"
    command = probe_command(sys.executable, load, k.url, k.model, report_dir)
    proc = start_probe(command, report_dir, dict(os.environ))
    time.sleep(k.after_s)
    workers = eng.engine_workers(state)
    data: dict[str, Any] = {"workers_before": workers}
    if not workers:
        proc.send_signal(signal.SIGINT)
        data["probe"] = finish_probe("kill", proc, command, report_dir=report_dir, timeout=60).to_dict()
        return "failed", f"no {eng.WORKER_MARK} process found in engine {k.name}", data
    victim = next(((p, c) for p, c in workers if "Worker_TP1" in c), workers[-1])
    t_kill = time.monotonic()
    os.kill(victim[0], signal.SIGKILL)
    data["killed"] = {"pid": victim[0], "cmdline": victim[1], "at": now_iso()}
    timeline = []
    after = state
    while time.monotonic() - t_kill < 90:
        code = eng.health_code(k.url, timeout=0.5)
        after = eng.read_state(paths.state, k.name) or after
        timeline.append({"t_s": round(time.monotonic() - t_kill, 2), "health": code, "api_running": after.running})
        if not after.running:
            break
        time.sleep(0.5)
    data["api_exit_code"] = after.exit_code
    data["api_exit_after_s"] = (round(after.exited_mono - t_kill, 2)
                                if after.exit_code is not None and after.exited_mono is not None else None)
    data["health_timeline"] = timeline
    data["left_in_session_after_exit"] = eng.session_members(state.pid)
    data["gpu_apps_after_exit"] = compute_apps(k.smi)
    outcome = finish_probe("kill", proc, command, report_dir=report_dir, timeout=k.duration_s + 120)
    data["probe"] = outcome.to_dict()
    data["failures_by_kind"] = outcome.figures.get("failures_by_kind", {})
    eng.stop(paths.state, k.name)
    data["gpu_apps_after_cleanup"] = wait_gpus_free(k.smi)
    write_json(paths.results / "kill.json", data)
    kinds = ", ".join(f"{n}={v}" for n, v in sorted(data["failures_by_kind"].items())) or "none"
    api = (f"API exited with code {after.exit_code} {data['api_exit_after_s']} s after the kill"
           if after.exit_code is not None else "API still running 90 s after the kill")
    return "ok", f"killed {victim[1].split()[0]}; {api}; probe failures: {kinds}", data


def stop_engine(paths: Paths, name: str, smi: str = SMI) -> StepOut:
    final = eng.stop(paths.state, name)
    data = {"engine": name, "exit_code": final.exit_code if final else None, "gpu_apps_after": wait_gpus_free(smi)}
    return "ok", f"stopped {name}" if final else f"no engine {name} was started", data


def balance(paths: Paths, seconds: float, smi: str = SMI) -> StepOut:
    from classroom_validation.balance import run_balance  # noqa: PLC0415 - needs the probe and torch

    stopped = stop_all(paths)
    held = wait_gpus_free(smi)
    gpus = gpu_indices(smi)
    if len(gpus) < 2:
        raise Skip(f"{len(gpus)} GPU: the balance case needs two")
    runs = [run_balance("gpu0-only", gpus[:1], seconds=seconds, warmup=3.0, env=dict(os.environ)),
            run_balance("all-gpus", gpus, seconds=seconds, warmup=3.0, env=dict(os.environ))]
    data = {"engines_stopped": stopped, "gpu_apps_before": held, "runs": [r.to_dict() for r in runs]}
    write_json(paths.results / "matmul-balance.json", data)
    return "ok", "; ".join(f"{r.name}: {r.status}" for r in runs), data
