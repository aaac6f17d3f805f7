"""Command line: `run` and `compare`. Exit codes: 0 pass, 1 fail, 2 bad input, 3 inconclusive."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from classroom_probe import __version__
from classroom_probe.compare import compare
from classroom_probe.config import APIS, GPU_MODES, MODES, Config
from classroom_probe.errors import BadInput
from classroom_probe.gate import EXIT_BAD_INPUT
from classroom_probe.prompts import builtin_prompts, load_prompts
from classroom_probe.thresholds import PROFILES, load_thresholds


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"bad input: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m classroom_probe", description="Load an LLM server like a classroom and judge it.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="apply a load, write reports, exit with the verdict")
    r.add_argument("--base-url", required=True)
    r.add_argument("--api", choices=APIS, default="chat")
    r.add_argument("--model", required=True)
    r.add_argument("--api-key-file", type=Path)
    r.add_argument("--header", action="append", default=[], metavar='"Name: value"')
    r.add_argument("--mode", choices=MODES, default="classroom")
    r.add_argument("--students", type=int, default=24)
    r.add_argument("--duration", type=float)
    r.add_argument("--warmup", type=float, default=5.0)
    r.add_argument("--think-min", type=float, default=1.0)
    r.add_argument("--think-max", type=float, default=3.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--requests", type=int)
    r.add_argument("--concurrency", type=int)
    r.add_argument("--rate", type=float)
    r.add_argument("--poisson", action="store_true")
    r.add_argument("--ramp-start", type=int, default=1)
    r.add_argument("--ramp-step", type=int, default=4)
    r.add_argument("--ramp-max", type=int, default=64)
    r.add_argument("--ramp-step-duration", type=float, default=30.0)
    r.add_argument("--max-tokens", type=int, required=True)
    r.add_argument("--ignore-eos", action="store_true")
    r.add_argument("--prompts", type=Path)
    r.add_argument("--profile", choices=sorted(PROFILES), default="classroom")
    r.add_argument("--thresholds", type=Path)
    r.add_argument("--metrics-url", default="auto", metavar="URL|auto|off")
    r.add_argument("--gpu", choices=GPU_MODES, default="auto")
    r.add_argument("--report-dir", type=Path, required=True)
    r.add_argument("--records", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--connect-timeout", type=float, default=5.0)
    r.add_argument("--read-timeout", type=float, default=60.0)
    r.add_argument("--drain-timeout", type=float, default=30.0)
    r.add_argument("--no-continuous-usage", action="store_true",
                   help="do not send stream_options.continuous_usage_stats (for strict gateways)")
    c = sub.add_parser("compare", help="render two report.json side by side")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--out", type=Path, required=True)
    return p


def _headers(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in values:
        name, colon, value = raw.partition(":")
        if not colon or not name.strip():
            raise BadInput("--header", f"expected 'Name: value', got {raw!r}")
        out[name.strip()] = value.strip()
    return out


def _api_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInput("--api-key-file", f"cannot read {path}: {exc.strerror}") from exc
    if not key:
        raise BadInput("--api-key-file", f"{path} is empty")
    return key


def config_from_args(a: argparse.Namespace) -> Config:
    config = Config(
        base_url=a.base_url, api=a.api, model=a.model, max_tokens=a.max_tokens, report_dir=a.report_dir,
        mode=a.mode, api_key=_api_key(a.api_key_file), headers=_headers(a.header), students=a.students,
        duration=a.duration if a.duration is not None else 60.0, warmup=a.warmup, think_min=a.think_min,
        think_max=a.think_max, seed=a.seed, requests=a.requests, concurrency=a.concurrency, rate=a.rate,
        poisson=a.poisson, ramp_start=a.ramp_start, ramp_step=a.ramp_step, ramp_max=a.ramp_max,
        ramp_step_duration=a.ramp_step_duration, ignore_eos=a.ignore_eos,
        prompts=load_prompts(a.prompts) if a.prompts else builtin_prompts(), profile=a.profile,
        thresholds=load_thresholds(a.profile, a.thresholds), metrics_url=a.metrics_url, gpu=a.gpu,
        records=a.records, quiet=a.quiet, connect_timeout=a.connect_timeout, read_timeout=a.read_timeout,
        drain_timeout=a.drain_timeout, continuous_usage=not a.no_continuous_usage, progress=not a.quiet,
        batch_time_limit=a.duration if a.mode == "batch" else None,
    )
    if a.metrics_url not in ("auto", "off") and not a.metrics_url.startswith(("http://", "https://")):
        raise BadInput("--metrics-url", "must be an http(s) URL, auto or off")
    config.validate()
    return config


def _run(a: argparse.Namespace) -> int:
    from classroom_probe.runner import run  # noqa: PLC0415  (keeps `compare` and --help free of aiohttp start-up)

    config = config_from_args(a)
    result = run(config)
    verdict = result.verdict
    if config.quiet:
        print(json.dumps({"status": verdict.status, "checks": [c.to_json() for c in verdict.checks],
                          "report_dir": str(config.report_dir)}))
    else:
        print(f"verdict: {verdict.status}")
        for c in verdict.checks:
            mark = {True: "pass", False: "FAIL", None: "skip"}[c.passed]
            print(f"  [{mark}] {c.name}: measured {c.measured} limit {c.limit} ({c.detail})")
        print(f"reports: {config.report_dir}/report.{{json,md,html}}")
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            for path in compare(args.a, args.b, args.out):
                print(path)
            return 0
        return _run(args)
    except BadInput as exc:
        sys.stderr.write(f"bad input: {exc}\n")
        return EXIT_BAD_INPUT
