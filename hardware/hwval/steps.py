"""The validation, step by step. Each step records what it measured; a failed step never stops the run,
but steps that need a healthy engine are skipped when there is none."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwval import engine as eng
from hwval.ansible_run import HOST, run_playbook
from hwval.gpu_balance import gpu_count, run_balance
from hwval.kvcompare import compare_kv
from hwval.kvlog import parse_kv_log
from hwval.probe_run import ProbeLoad, check, finish_probe, run_probe, start_probe
from hwval.results import RunResults, StepResult, now_iso, read_json, write_json
from hwval.settings import Settings
from hwval.smi import compute_apps, memory_used, run_smi

StepOut = tuple[str, str, dict[str, Any]]  # status, detail, data


class Skip(Exception):
    """The step cannot run (a step it needs failed, or the time is up)."""


@dataclass
class Context:
    settings: Settings
    results: RunResults
    deadline: float
    env: dict[str, str]
    venv: Path
    engine: eng.Engine | None = None
    engine_name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.settings.results

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def need(self, *steps: str) -> None:
        for name in steps:
            done = self.results.step(name)
            if done is None or done.status != "ok":
                raise Skip(f"needs step {name} to have passed")

    def extra_vars(self) -> dict[str, object]:
        s = self.settings
        return {
            "hw_validation_root": str(s.root),
            "hw_validation_results": str(self.out),
            "hw_validation_python": s.python,
            "hw_validation_site": str(s.site) if s.site else "",
            "hw_validation_venv": str(self.venv),
            "hw_validation_served_model_name": s.served_model_name,
            "hw_validation_tp1_enforce_eager": s.tp1_enforce_eager,
            **({"hw_validation_model_dir": str(s.model_dir)} if s.model_dir else {}),
            **s.extra_vars,
        }


def python_venv(python: str, root: Path) -> Path:
    """A folder whose bin/python is `python`: the role's command line is `<venv>/bin/python -m vllm...`."""
    done = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                          check=True, timeout=30)
    prefix = Path(done.stdout.strip())
    if (prefix / "bin" / "python").exists():
        return prefix
    shim = root / "pyshim"
    (shim / "bin").mkdir(parents=True, exist_ok=True)
    link = shim / "bin" / "python"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(python if os.path.isabs(python) else subprocess.check_output(["which", python], text=True).strip())
    return shim


# --- steps ---------------------------------------------------------------------------------------------------


def step_host(ctx: Context) -> StepOut:
    s = ctx.settings
    data: dict[str, Any] = {"platform": platform.platform(), "python": s.python}
    data["nvidia_smi_L"] = run_smi(["-L"], s.smi).strip().splitlines()
    data["gpus"] = run_smi(["--query-gpu=index,name,memory.total,memory.used,driver_version",
                            "--format=csv,noheader"], s.smi).strip().splitlines()
    code = ("import importlib.metadata as m, json\n"
            "names = ['vllm','torch','transformers','tokenizers','ansible-core','classroom_probe','xgrammar',"
            "'nvidia-ml-py','aiohttp','triton','flashinfer-python']\n"
            "out = {}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))\n")
    for key, python in (("versions", s.python), ("vllm_python_versions", s.vllm_python)):
        if python:
            done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=ctx.env, timeout=60,
                                  check=False)
            data[key] = done.stdout.strip() or done.stderr.strip()[-500:]
    data["compute_apps_before"] = compute_apps(s.smi)
    write_json(ctx.out / "host.json", data)
    return "ok", f"{len(data['nvidia_smi_L'])} GPUs", data


def step_preflight(ctx: Context) -> StepOut:
    run = run_playbook(ctx.settings.python, ctx.settings.site, ctx.settings.repo, root=ctx.settings.root,
                       playbook=Path("playbooks/preflight.yml"), extra_vars=ctx.extra_vars(),
                       log_path=ctx.out / "preflight" / "ansible.log", env=ctx.env, timeout=240)
    summary_path = ctx.out / "preflight" / HOST / "preflight.json"
    if not summary_path.is_file():
        return "failed", f"no preflight.json (ansible exit {run.exit_code})", {"log_tail": run.log}
    summary = read_json(summary_path)
    data = {"ansible_exit": run.exit_code, "verdict": summary.get("verdict"), "failed": summary.get("failed"),
            "warned": summary.get("warned"), "estimate": summary.get("estimate"), "command": run.command}
    return "ok", f"preflight verdict {summary.get('verdict')} (ansible exit {run.exit_code})", data


def step_render(ctx: Context) -> StepOut:
    run = run_playbook(ctx.settings.python, ctx.settings.site, ctx.settings.repo, root=ctx.settings.root,
                       playbook=Path("hardware/playbooks/render.yml"), extra_vars=ctx.extra_vars(),
                       log_path=ctx.out / "render" / "ansible.log", env=ctx.env, timeout=180)
    data: dict[str, Any] = {"ansible_exit": run.exit_code}
    for name in ("tp2", "tp1"):
        folder = ctx.out / "render" / name
        exec_start = folder / "exec-start.txt"
        data[name] = {
            "run_sh": (folder / "run.sh").is_file(),
            "exec_start": exec_start.read_text().strip() if exec_start.is_file() else None,
            "environment": (folder / "environment").read_text() if (folder / "environment").is_file() else None,
        }
    if run.exit_code != 0 or not all(data[n]["run_sh"] for n in ("tp2", "tp1")):
        data["log_tail"] = run.log
        return "failed", f"render failed (ansible exit {run.exit_code})", data
    return "ok", "rendered tp2 and tp1", data


def _wait_gpus_free(ctx: Context, timeout: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    apps = compute_apps(ctx.settings.smi)
    while apps and time.monotonic() < deadline:
        time.sleep(2)
        apps = compute_apps(ctx.settings.smi)
    return apps


STATE_VARS = ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT")


def _make_state_dirs(environment: Path) -> None:
    """The folders the unit's environment names, as the role's install creates them on a real box."""
    for line in environment.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name in STATE_VARS:
            Path(value.strip("'\"")).mkdir(parents=True, exist_ok=True)


def _serve(ctx: Context, name: str, timeout: float) -> StepOut:
    ctx.need("render")
    if ctx.engine is not None:
        raise Skip(f"engine {ctx.engine_name} still running")
    if eng.health_code(ctx.settings.base_url) is not None:
        return "failed", f"{ctx.settings.base_url} already answers: another server holds the port", {}
    held = _wait_gpus_free(ctx)
    run_sh = ctx.out / "render" / name / "run.sh"
    _make_state_dirs(run_sh.parent / "environment")
    engine = eng.start(run_sh, ctx.out / f"vllm-{name}.log", ctx.env)
    ctx.engine, ctx.engine_name = engine, name
    data: dict[str, Any] = {"command": ["sh", str(run_sh)], "gpu_apps_before": held}
    try:
        data["healthy_after_s"] = eng.wait_healthy(engine, ctx.settings.base_url, min(timeout, ctx.remaining()))
    except RuntimeError as exc:
        data["log_tail"] = _tail(engine.log_path, 4000)
        data["exit_code"] = eng.stop(engine)
        ctx.engine = None
        return "failed", str(exc), data
    data["gpu_memory_used_mib"] = memory_used(ctx.settings.smi)
    data["kv_log"] = parse_kv_log(engine.log_path.read_text(errors="replace")).to_dict()
    return "ok", f"healthy after {data['healthy_after_s']} s", data


def step_serve_tp2(ctx: Context) -> StepOut:
    return _serve(ctx, "tp2", ctx.settings.health_timeout_tp2_s)


def step_serve_tp1(ctx: Context) -> StepOut:
    if ctx.engine is not None:
        _stop_engine(ctx)
    return _serve(ctx, "tp1", ctx.settings.health_timeout_tp1_s)


def step_kv_compare(ctx: Context) -> StepOut:
    ctx.need("preflight", "serve_tp2")
    preflight = read_json(ctx.out / "preflight" / HOST / "preflight.json")
    log = parse_kv_log((ctx.out / "vllm-tp2.log").read_text(errors="replace"))
    comparison = compare_kv(preflight, log)
    data = {"comparison": comparison.to_dict(), "log": log.to_dict()}
    write_json(ctx.out / "kv.json", data)
    status = "ok" if comparison.tokens_ratio is not None else "failed"
    return status, comparison.detail, data


def _probe(ctx: Context, load: ProbeLoad, timeout: float) -> StepOut:
    if ctx.engine is None:
        raise Skip("no engine running")
    outcome = run_probe(ctx.settings.python, load, ctx.settings.base_url, model=ctx.settings.served_model_name,
                        report_dir=ctx.out / "probe" / load.name, env=ctx.env, timeout=timeout)
    balance = check(outcome, "gpu_util_balance_max_ratio")
    detail = f"probe {outcome.status} (exit {outcome.exit_code})"
    if balance:
        detail += f"; balance check {balance.get('passed')}: {balance.get('detail')}"
    status = "ok" if outcome.exit_code is not None and outcome.exit_code != 2 else "failed"
    return status, detail, outcome.to_dict()


def _classroom(ctx: Context, name: str, students: int) -> StepOut:
    ctx.need("serve_tp2")
    s = ctx.settings
    load = ProbeLoad(name, "classroom", s.classroom_max_tokens, students=students, duration=s.classroom_duration_s,
                     warmup=s.classroom_warmup_s)
    return _probe(ctx, load, s.classroom_duration_s + s.classroom_warmup_s + 120)


def step_probe_c24(ctx: Context) -> StepOut:
    return _classroom(ctx, "c24", ctx.settings.students[0])


def step_probe_c48(ctx: Context) -> StepOut:
    return _classroom(ctx, "c48", ctx.settings.students[1])


def step_probe_batch(ctx: Context) -> StepOut:
    ctx.need("serve_tp2")
    s = ctx.settings
    load = ProbeLoad("batch", "batch", s.batch_max_tokens, requests=s.batch_requests, concurrency=s.batch_concurrency,
                     duration=s.batch_time_limit_s)
    return _probe(ctx, load, s.batch_time_limit_s + 120)


def step_kill(ctx: Context) -> StepOut:
    ctx.need("serve_tp2")
    if ctx.engine is None or ctx.engine_name != "tp2":
        raise Skip("no TP=2 engine running")
    s, engine = ctx.settings, ctx.engine
    load = ProbeLoad("kill", "classroom", s.kill_max_tokens, students=s.kill_students,
                     duration=s.kill_probe_duration_s, warmup=0.0)
    report_dir = ctx.out / "probe" / "kill"
    proc, command = start_probe(s.python, load, s.base_url, model=s.served_model_name, report_dir=report_dir,
                                env=ctx.env)
    time.sleep(s.kill_after_s)
    workers = eng.engine_workers(engine)
    data: dict[str, Any] = {"workers_before": workers}
    if not workers:
        proc.send_signal(signal.SIGINT)
        data["probe"] = finish_probe("kill", proc, command, report_dir=report_dir, timeout=60).to_dict()
        return "failed", "no VLLM::Worker_TP process found", data
    victim = next(((p, c) for p, c in workers if "Worker_TP1" in c), workers[-1])
    t_kill = time.monotonic()
    os.kill(victim[0], signal.SIGKILL)
    data["killed"] = {"pid": victim[0], "cmdline": victim[1], "at": now_iso()}
    timeline = []
    exit_code = None
    while time.monotonic() - t_kill < 90:
        code = eng.health_code(s.base_url, timeout=0.5)
        rc = engine.proc.poll()
        timeline.append({"t_s": round(time.monotonic() - t_kill, 2), "health": code, "api_running": rc is None})
        if rc is not None:
            exit_code = rc
            break
        time.sleep(0.5)
    data["api_exit_code"] = exit_code
    data["api_exit_after_s"] = timeline[-1]["t_s"] if exit_code is not None else None
    data["health_timeline"] = timeline
    data["left_in_session_after_exit"] = eng.session_members(engine.pgid)
    data["gpu_apps_after_exit"] = compute_apps(s.smi)
    outcome = finish_probe("kill", proc, command, report_dir=report_dir, timeout=s.kill_probe_duration_s + 120)
    data["probe"] = outcome.to_dict()
    data["failures_by_kind"] = outcome.figures.get("failures_by_kind", {})
    _stop_engine(ctx)
    data["gpu_apps_after_cleanup"] = _wait_gpus_free(ctx)
    write_json(ctx.out / "kill.json", data)
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(data["failures_by_kind"].items())) or "none"
    api = (f"API exited with code {exit_code} {data['api_exit_after_s']} s after the kill" if exit_code is not None
           else "API still running 90 s after the kill")
    return "ok", f"killed {victim[1].split()[0]}; {api}; probe failures: {kinds}", data


def step_probe_tp1_imbalance(ctx: Context) -> StepOut:
    ctx.need("serve_tp1")
    s = ctx.settings
    load = ProbeLoad("tp1-imbalance", "classroom", s.classroom_max_tokens, students=s.imbalance_students,
                     duration=s.imbalance_duration_s, warmup=s.imbalance_warmup_s)
    return _probe(ctx, load, s.imbalance_duration_s + s.imbalance_warmup_s + 120)


def _stop_engine(ctx: Context) -> dict[str, Any]:
    if ctx.engine is None:
        return {}
    code = eng.stop(ctx.engine)
    data = {"engine": ctx.engine_name, "exit_code": code}
    ctx.engine = None
    return data


def step_stop_tp1(ctx: Context) -> StepOut:
    data = _stop_engine(ctx)
    data["gpu_apps_after"] = _wait_gpus_free(ctx)
    return "ok", f"stopped {data.get('engine', 'nothing')}", data


def step_matmul_balance(ctx: Context) -> StepOut:
    if ctx.engine is not None:
        _stop_engine(ctx)
    held = _wait_gpus_free(ctx)
    s = ctx.settings
    count = gpu_count(s.smi)
    if count < 2:
        raise Skip(f"{count} GPU: the balance case needs two")
    runs = [run_balance("gpu0-only", [0], seconds=s.matmul_seconds, warmup=3.0, env=ctx.env),
            run_balance("all-gpus", list(range(count)), seconds=s.matmul_seconds, warmup=3.0, env=ctx.env)]
    data = {"gpu_apps_before": held, "runs": [r.to_dict() for r in runs]}
    write_json(ctx.out / "matmul-balance.json", data)
    return "ok", "; ".join(f"{r.name}: {r.status}" for r in runs), data


STEP_FUNCS: dict[str, Callable[[Context], StepOut]] = {
    "host": step_host,
    "preflight": step_preflight,
    "render": step_render,
    "serve_tp2": step_serve_tp2,
    "kv_compare": step_kv_compare,
    "probe_c24": step_probe_c24,
    "probe_c48": step_probe_c48,
    "probe_batch": step_probe_batch,
    "kill": step_kill,
    "serve_tp1": step_serve_tp1,
    "probe_tp1_imbalance": step_probe_tp1_imbalance,
    "stop_tp1": step_stop_tp1,
    "matmul_balance": step_matmul_balance,
}

# Seconds a step needs at least; a step is skipped when less remains in the run's budget.
MIN_SECONDS: dict[str, float] = {"serve_tp2": 150, "serve_tp1": 60, "probe_c24": 75, "probe_c48": 75,
                                 "probe_batch": 40, "kill": 60, "probe_tp1_imbalance": 50, "matmul_balance": 70}


def _tail(path: Path, size: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-size:].decode("utf-8", "replace")


def run_steps(ctx: Context, log: Callable[[str], None]) -> RunResults:
    always = {"stop_tp1"}
    try:
        for name in ctx.settings.steps:
            started, t0 = now_iso(), time.monotonic()
            if ctx.remaining() < MIN_SECONDS.get(name, 5) and name not in always:
                result = StepResult(name, "skipped", started, 0.0, f"out of time ({ctx.remaining():.0f} s left)")
            else:
                log(f"step {name} ...")
                try:
                    status, detail, data = STEP_FUNCS[name](ctx)
                    result = StepResult(name, status, started, round(time.monotonic() - t0, 1), detail, data)
                except Skip as exc:
                    result = StepResult(name, "skipped", started, 0.0, str(exc))
                except Exception as exc:  # a broken step is a result, never the end of the run
                    result = StepResult(name, "failed", started, round(time.monotonic() - t0, 1),
                                        f"{type(exc).__name__}: {exc}")
            ctx.results.add(result)
            log(f"step {name}: {result.status} ({result.seconds} s) {result.detail}")
    finally:
        if ctx.engine is not None:
            _stop_engine(ctx)
        ctx.results.finish()
    return ctx.results
