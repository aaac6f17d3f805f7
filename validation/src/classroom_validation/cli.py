"""`python -m classroom_validation <command>`: the validation's steps (called by playbooks/validate.yml),
its summary, and the offline bundle.

Every step command records its result in <root>/results/results.json, prints it as one JSON line and
exits 0: a failed or skipped step is a result, and the playbook's last task judges the whole run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from classroom_validation import steps
from classroom_validation.bundle.build import BuildOptions, build, describe, parse_size, plan
from classroom_validation.bundle.resolve import Target, parse_installed
from classroom_validation.bundle.spec import BundleError, load_spec
from classroom_validation.expectations import verdict
from classroom_validation.kvlog import parse_kv_log
from classroom_validation.pack import pack
from classroom_validation.results import RESULTS_FILE, RunResults
from classroom_validation.startup import parse_startup
from classroom_validation.summarize import write_summary

# Step commands that work before a run has begun.
NO_RUN_NEEDED = ("begin", "engine-status", "stop-all")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _count(text: str) -> int:
    value = _positive(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text} must be a whole number")
    return int(value)


def _step_parsers(sub: Any) -> None:
    def step(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text)
        p.add_argument("--root", type=Path, required=True, help="the validation's folder on this host")
        return p

    p = step("begin", "start a new results folder (stops engines a previous run left)")
    p.add_argument("--settings-json", default="{}", help="the run's settings, kept in results.json")
    step("host", "GPUs, driver, package versions, GPU processes before anything starts")
    p = step("record-preflight", "record the gpu_preflight role's summary")
    p.add_argument("--host", required=True, help="inventory_hostname (the summary's folder)")
    p.add_argument("--summary-stdin", action="store_true",
                   help="read the summary from stdin and keep it at preflight/<host>/preflight.json")
    p = step("record-render", "record what the vllm_server role rendered")
    p.add_argument("--name", action="append", required=True, help="a render folder (repeat)")
    p = step("serve", "start vLLM from a rendered run.sh and time its start")
    p.add_argument("--name", required=True, help="the render folder (tp2, tp1)")
    p.add_argument("--step", required=True, help="the step's name in the results (serve_tp2, restart_tp2, ...)")
    p.add_argument("--url", required=True, help="the server's base URL")
    p.add_argument("--timeout", type=_positive, required=True, help="seconds to wait for /health 200")
    p.add_argument("--cold", action="store_true", help="empty the compile caches first (a first start)")
    p.add_argument("--inherit-env", action="store_true",
                   help="start from this process's environment instead of systemd's minimal one")
    p = step("kv", "compare vLLM's logged KV capacity with the preflight's prediction")
    p.add_argument("--host", required=True)
    p.add_argument("--start-step", default="serve_tp2", help="the first start's step (its log is read)")
    p.add_argument("--log", default="vllm-tp2.log", help="that start's log in the results")
    p = step("engine-status", "print whether an engine runs and answers (records nothing)")
    p.add_argument("--name", required=True)
    p.add_argument("--url", required=True)
    p = step("record-gate", "record a concurrency_probe role run (reports copied to probe/<run>/)")
    p.add_argument("--run", required=True, help="the run's folder under gate/ (c24, batch, ...)")
    p.add_argument("--step", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--engine", required=True)
    p = step("kill", "kill -9 one tensor-parallel worker under load; failure kinds, /health, exit code, leftovers")
    p.add_argument("--name", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--students", type=_count, required=True)
    p.add_argument("--after", type=_positive, required=True, help="seconds of load before the kill")
    p.add_argument("--duration", type=_positive, required=True, help="the probe's duration")
    p.add_argument("--max-tokens", type=_count, required=True)
    p = step("stop", "stop an engine")
    p.add_argument("--name", required=True)
    p.add_argument("--step", help="record it as this step")
    step("stop-all", "stop every engine of this run (records nothing)")
    p = step("balance", "matmul on GPU 0 only, then on every GPU, judged by the gate's GPU checks")
    p.add_argument("--seconds", type=_positive, required=True)
    step("finish", "close the run: DONE, SUMMARY.md, and the verdict as JSON")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m classroom_validation", description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    _step_parsers(sub)
    s = sub.add_parser("summarize", help="write SUMMARY.md from a results folder")
    s.add_argument("results", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("status", help="one line per recorded step of a results folder")
    s.add_argument("results", type=Path)
    s = sub.add_parser("kvlog", help="the KV-capacity lines of a vLLM log, as JSON")
    s.add_argument("log", type=Path)
    s = sub.add_parser("startup", help="the start-up phases of a vLLM log, as JSON")
    s.add_argument("log", type=Path)
    s = sub.add_parser("pack", help="pack a results folder into a tar.gz to carry it")
    s.add_argument("results", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--log-keep", default="0", help="keep only this much of each log's head and tail (e.g. 512K)")
    b = sub.add_parser("bundle", help="an offline bundle for a host without network")
    bsub = b.add_subparsers(dest="bundle_command", required=True)
    for name, text in (("build", "build the bundle into --out"), ("plan", "print what the bundle would carry")):
        s = bsub.add_parser(name, help=text)
        s.add_argument("--spec", type=Path, required=True, help="the bundle's TOML spec (validation/bundles/)")
        s.add_argument("--repo", type=Path, default=Path("."), help="the project root (default: here)")
        s.add_argument("--python-version", help="the host's Python, e.g. 3.12 (default: this one's)")
        s.add_argument("--glibc", help="the host's glibc, e.g. 2.35 (`ldd --version`; default: this machine's)")
        s.add_argument("--arch", help="the host's CPU architecture, e.g. x86_64 (default: this machine's)")
        s.add_argument("--installed", type=Path,
                       help="the host's `python3 -m pip list --format=freeze`: what it has is left out")
        s.add_argument("--exclude", action="append", default=[], metavar="NAME",
                       help="never carry this distribution, besides the spec's exclude list (repeat)")
        s.add_argument("--pip-python", default=sys.executable,
                       help="the Python whose pip resolves and downloads (default: this one). pip evaluates "
                            "dependency markers with its own version, so give one of the host's version")
        s.add_argument("--pip-arg", action="append", default=[],
                       help="an option for pip's index, e.g. --pip-arg=--index-url=URL (repeat)")
        if name == "build":
            s.add_argument("--out", type=Path, required=True, help="a new or empty folder")
            s.add_argument("--part-size", help="split the bundle into parts of this size (e.g. 500M, 2G)")
            s.add_argument("--release-image", default="",
                           help="a container image of the host's release, for the spec's [debs] (e.g. "
                                "docker.io/library/ubuntu:24.04); its mirror must answer")
            s.add_argument("--container-tool", default="podman", help="podman (default) or docker")
    return p


def _emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def _finish(paths: steps.Paths) -> dict[str, Any]:
    RunResults.load(paths.results).finish()
    write_summary(paths.results, paths.results / "SUMMARY.md")
    return verdict(paths.results)


def _run_step_command(a: argparse.Namespace) -> int:
    paths = steps.Paths(a.root.resolve())
    step = getattr(a, "step", None)
    # Commands that record no step of their own.
    plain: dict[str, Callable[[], object]] = {
        "begin": lambda: {"stopped_engines": steps.begin(paths, dict(json.loads(a.settings_json)))},
        "engine-status": lambda: steps.engine_status(paths, a.name, a.url),
        "stop-all": lambda: {"stopped_engines": steps.stop_all(paths)},
        "finish": lambda: _finish(paths),
        "stop": lambda: steps.stop_engine(paths, a.name)[2],
    }
    recorded: dict[str, tuple[str, Callable[[], steps.StepOut]]] = {
        "host": ("host", lambda: steps.host(paths)),
        "record-preflight": ("preflight", lambda: steps.record_preflight(
            paths, a.host, sys.stdin.read() if a.summary_stdin else None)),
        "record-render": ("render", lambda: steps.record_render(paths, a.name)),
        "kv": ("kv_compare", lambda: steps.kv_compare(paths, a.host, a.start_step, a.log)),
        "balance": ("matmul_balance", lambda: steps.balance(paths, a.seconds)),
        "serve": (str(step), lambda: steps.serve(paths, steps.Serve(a.name, a.step, a.url, a.timeout, a.cold,
                                                                    a.inherit_env))),
        "record-gate": (str(step), lambda: steps.record_gate(paths, a.run, a.url, a.engine)),
        "kill": ("kill", lambda: steps.kill(paths, steps.Kill(a.name, a.url, a.model, a.students, a.after,
                                                              a.duration, a.max_tokens))),
    }
    if a.command == "stop" and step:
        recorded["stop"] = (step, lambda: steps.stop_engine(paths, a.name))
    if a.command in recorded:
        result = steps.run_step(paths, *recorded[a.command])
        _emit({"step": result.name, "status": result.status, "seconds": result.seconds, "detail": result.detail})
        return 0
    try:
        _emit(plain[a.command]())
    except steps.Refused as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


def status_lines(results: Path) -> list[str]:
    if not (results / RESULTS_FILE).is_file():
        return [f"no {RESULTS_FILE} in {results} yet"]
    run = RunResults.load(results)
    lines = [f"{s.name:<20} {s.status:<8} {s.seconds:>6} s  {s.detail}" for s in run.steps]
    return [*lines, "finished" if run.finished_at else f"running ({len(run.steps)} steps recorded)"]


def _bundle(a: argparse.Namespace) -> int:
    spec = load_spec(a.spec)
    spec = dataclasses.replace(spec, exclude=(*spec.exclude, *a.exclude))
    here = Target.this_machine() if not (a.python_version and a.glibc and a.arch) else None
    target = Target(a.python_version or (here.python_version if here else ""), a.glibc or (here.glibc if here else ""),
                    a.arch or (here.arch if here else ""))
    installed = parse_installed(a.installed.read_text()) if a.installed else {}
    part_size = parse_size(a.part_size) if getattr(a, "part_size", None) else None
    options = BuildOptions(spec, a.repo.resolve(), target, installed, tuple(a.pip_arg), part_size,
                           python=a.pip_python, release_image=getattr(a, "release_image", ""),
                           container_tool=getattr(a, "container_tool", "podman"))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if a.bundle_command == "plan":
        import tempfile  # noqa: PLC0415 - the plan's wheels of the project's own packages are thrown away

        target.platforms()  # refuses a bad --glibc before anything is built
        with tempfile.TemporaryDirectory(prefix="bundle-plan-") as tmp:
            print("\n".join(describe(plan(options, Path(tmp), log))))
        return 0
    for path in build(options, a.out, log):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "summarize":
        print(write_summary(a.results, a.out))
    elif a.command == "status":
        print("\n".join(status_lines(a.results)))
    elif a.command == "kvlog":
        _emit(parse_kv_log(a.log.read_text(errors="replace")).to_dict())
    elif a.command == "startup":
        _emit(parse_startup(a.log.read_text(errors="replace")).to_dict())
    elif a.command == "pack":
        try:
            keep = parse_size(a.log_keep, minimum=0)
        except BundleError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
        print(pack(a.results, a.out, keep))
    elif a.command == "bundle":
        try:
            return _bundle(a)
        except BundleError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
    else:
        if a.command not in NO_RUN_NEEDED and not (a.root / "results" / RESULTS_FILE).is_file():
            print(f"ERROR: no run in {a.root}: the playbook's first step (begin) starts one", file=sys.stderr)
            return 2
        return _run_step_command(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
