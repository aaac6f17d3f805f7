"""`python -m hwval validate|status|bundle|summarize|kvlog`: the GPU validation's entry points."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hwval.bundle import bundle
from hwval.kvlog import parse_kv_log
from hwval.results import RESULTS_FILE, RunResults, read_json
from hwval.settings import STEPS, Settings


def _steps(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step(s) {unknown}; choose from {list(STEPS)}")
    return names


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hwval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="run the validation on this GPU host")
    v.add_argument("--root", type=Path, required=True, help="folder for the results, state and caches")
    v.add_argument("--repo", type=Path, required=True, help="the project checkout (roles, playbooks, probe)")
    v.add_argument("--python", default=sys.executable, help="interpreter with torch (and the carried packages)")
    v.add_argument("--site", type=Path, help="folder of carried packages (pip --target), put on PYTHONPATH")
    v.add_argument("--vllm-python", help="interpreter of vLLM's venv when it differs from --python")
    v.add_argument("--model-dir", type=Path, help="model folder (default: ROOT/model/gemma-3-4b-shaped)")
    v.add_argument("--extra-vars", type=Path, help="JSON file of more variables for the playbooks")
    v.add_argument("--steps", type=_steps, default=list(STEPS), help=f"comma list, in order; default {','.join(STEPS)}")
    v.add_argument("--budget-s", type=_positive, default=900.0, help="stop starting steps after this many seconds")
    v.add_argument("--classroom-duration", type=_positive, default=60.0)
    v.add_argument("--classroom-warmup", type=float, default=10.0)
    v.add_argument("--batch-requests", type=int, default=5000)
    v.add_argument("--batch-concurrency", type=int, default=128)
    v.add_argument("--batch-max-tokens", type=int, default=64)
    v.add_argument("--matmul-seconds", type=_positive, default=30.0)
    v.add_argument("--tp1-compiled", action="store_true",
                   help="start the TP=1 imbalance engine with torch.compile and CUDA graphs (slower start)")
    v.add_argument("--dry-run", action="store_true", help="print the settings and the steps, run nothing")
    s = sub.add_parser("status", help="one line per finished step of a results folder")
    s.add_argument("results", type=Path)
    b = sub.add_parser("bundle", help="pack a results folder into a tar.gz")
    b.add_argument("results", type=Path)
    b.add_argument("out", type=Path)
    k = sub.add_parser("kvlog", help="print the KV-capacity lines found in a vLLM log")
    k.add_argument("log", type=Path)
    m = sub.add_parser("summarize", help="write SUMMARY.md from a fetched results folder")
    m.add_argument("results", type=Path)
    m.add_argument("--out", type=Path, required=True)
    return p


def settings_from(a: argparse.Namespace) -> Settings:
    return Settings(
        root=a.root.resolve(), repo=a.repo.resolve(), python=a.python, site=a.site.resolve() if a.site else None,
        steps=a.steps, budget_s=a.budget_s, classroom_duration_s=a.classroom_duration,
        classroom_warmup_s=a.classroom_warmup, batch_requests=a.batch_requests,
        batch_concurrency=a.batch_concurrency, batch_max_tokens=a.batch_max_tokens, matmul_seconds=a.matmul_seconds,
        tp1_enforce_eager=not a.tp1_compiled, vllm_python=a.vllm_python,
        model_dir=a.model_dir.resolve() if a.model_dir else None,
        extra_vars=json.loads(a.extra_vars.read_text()) if a.extra_vars else {},
    )


def _validate(a: argparse.Namespace) -> int:
    settings = settings_from(a)
    if a.dry_run:
        print(json.dumps(settings.to_dict(), indent=2))
        return 0
    # The driver itself imports the probe's sampler and gate: same search path as its children.
    for path in reversed([p for p in (settings.site, settings.repo / "probe" / "src") if p is not None]):
        sys.path.insert(0, str(path))
    from hwval.steps import Context, python_venv, run_steps  # noqa: PLC0415 - needs the path above

    settings.results.mkdir(parents=True, exist_ok=True)
    log_file = settings.results / "driver.log"

    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        with log_file.open("a") as fh:
            fh.write(f"{stamp} {line}\n")
        print(f"{stamp} {line}", flush=True)

    results = RunResults(settings.results, settings=settings.to_dict())
    ctx = Context(settings, results, time.monotonic() + settings.budget_s, settings.base_env(),
                  python_venv(settings.vllm_python or settings.python, settings.root))
    run_steps(ctx, log)
    return 0 if all(s.status != "failed" for s in results.steps) else 1


def status_lines(results_dir: Path) -> list[str]:
    path = results_dir / RESULTS_FILE
    if not path.is_file():
        return [f"no {RESULTS_FILE} in {results_dir} yet"]
    doc = read_json(path)
    lines = [f"{s['name']:<20} {s['status']:<8} {s['seconds']:>6} s  {s['detail']}" for s in doc["steps"]]
    lines.append("finished" if doc.get("finished_at") else f"running ({len(doc['steps'])} steps done)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "validate":
        return _validate(a)
    if a.command == "status":
        print("\n".join(status_lines(a.results)))
        return 0
    if a.command == "bundle":
        print(bundle(a.results, a.out))
        return 0
    if a.command == "kvlog":
        print(json.dumps(parse_kv_log(a.log.read_text(errors="replace")).to_dict(), indent=2))
        return 0
    from hwval.summarize import write_summary  # noqa: PLC0415

    print(write_summary(a.results, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
