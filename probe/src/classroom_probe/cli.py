"""Command line: `run`, `validate`, `compare`, `schema` and `checks`.

Every `run` option is generated from `Config`'s fields (flag, help, unit, default), and a run file
(`--config FILE.json`, the same names as the fields) goes through the same validation; options on
the command line override the file's. Exit codes: 0 pass, 1 fail, 2 bad input, 3 inconclusive.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from classroom_probe import __version__
from classroom_probe.checks import CATALOGUE
from classroom_probe.config import (
    OPTIONS,
    REQUIRED_FIELDS,
    RUN_FILE_MAX_BYTES,
    Config,
    default_of,
    field_hint,
    flag,
)
from classroom_probe.errors import BadInput, ProbeError
from classroom_probe.gate import EXIT_BAD_INPUT, EXIT_INCONCLUSIVE
from classroom_probe.inputs import read_json

EXIT_INTERRUPTED = 130
CLI_FIELDS = tuple(name for name, o in OPTIONS.items() if o.cli and o.runfile)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"bad input: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _named(convert: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return convert(text)

    parse.__name__ = name  # argparse says "invalid <name> value"
    return parse


_WHOLE = _named(int, "whole number")
_NUMBER = _named(float, "number")


def _plain(hint: Any) -> Any:
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if get_origin(hint) is not Literal and len(args) == 1 else hint


def _default_words(name: str) -> str:
    opt = OPTIONS[name]
    if opt.default_text:
        return opt.default_text
    value = default_of(name)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == {}:
        return "none"
    return f"{value:g} {opt.unit}".strip() if isinstance(value, float) else f"{value} {opt.unit}".strip()


def _add_option(group: argparse._ArgumentGroup, name: str) -> None:
    opt = OPTIONS[name]
    hint = _plain(field_hint(name))
    notes = [f"unit: {opt.unit}"] if opt.unit else []
    notes.append("required" if name in REQUIRED_FIELDS or name == "report_dir" else f"default: {_default_words(name)}")
    help_text = f"{opt.help} [{'; '.join(notes)}]".replace("%", "%%")
    kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
    if hint is bool:
        if default_of(name) is True:
            group.add_argument(f"--no-{name.replace('_', '-')}", action="store_false", **kw)
        else:
            group.add_argument(flag(name), action="store_true", **kw)
        return
    if opt.metavar:
        kw["metavar"] = opt.metavar
    if get_origin(hint) is Literal:
        kw["choices"] = get_args(hint)
    elif get_origin(hint) is dict:
        kw["action"] = "append"
    elif hint is int:
        kw["type"] = _WHOLE
    elif hint is float:
        kw["type"] = _NUMBER
    elif hint is Path:
        kw["type"] = Path
    group.add_argument(flag(name), **kw)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m classroom_probe", description="Load an LLM server like a classroom and judge it.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="apply a load, write reports, exit with the verdict",
                         description="Apply a load, write reports, exit with the verdict: 0 pass, 1 fail, 2 bad "
                                     "input, 3 inconclusive.")
    check = sub.add_parser("validate", help="check settings and the files they name, load nothing",
                           description="Check a run's settings and the files they name without loading anything; "
                                       "print the settings as a run file. Exit 0, or 2 with the bad setting named.")
    for parser in (run, check):
        parser.add_argument("--config", type=Path, metavar="FILE.json",
                            help="run file: a JSON object of these settings by field name (e.g. "
                                 '{"base_url": ..., "students": 24}); options given here override it; schema: '
                                 "python -m classroom_probe schema run-file")
        group = parser.add_argument_group("settings (run-file key: the option's name with _ for -)")
        for name in CLI_FIELDS:
            _add_option(group, name)
    c = sub.add_parser("compare", help="render two report.json side by side")
    c.add_argument("a", type=Path, metavar="A/report.json")
    c.add_argument("b", type=Path, metavar="B/report.json")
    c.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for compare.md and compare.html")
    s = sub.add_parser("schema", help="print the JSON schema of the run file or of the report, or the settings "
                                      "as a Markdown table")
    s.add_argument("which", choices=("run-file", "report", "settings"))
    sub.add_parser("checks", help="list the checks: ID, plain name and what to change when one fails")
    return p


def _mapping(a: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The run file's settings overlaid with the options given on the command line."""
    merged: dict[str, Any] = {}
    source = "the command line"
    config_file: Path | None = getattr(a, "config", None)
    if config_file is not None:
        obj = read_json(config_file, "--config", RUN_FILE_MAX_BYTES)
        if not isinstance(obj, dict):
            raise BadInput("--config", f"{config_file} must hold a JSON object")
        merged.update(obj)
        source = f"run file {config_file}"
    for name in CLI_FIELDS:
        if not hasattr(a, name):
            continue
        value = getattr(a, name)
        if name == "headers":
            value = _headers(value)
        elif isinstance(value, Path):
            value = str(value)
        merged[name] = value
    return merged, source


def _headers(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in values:
        name, colon, value = raw.partition(":")
        if not colon or not name.strip():
            raise BadInput("--header", f"expected 'Name: value', got {raw!r}")
        out[name.strip()] = value.strip()
    return out


def config_from_args(a: argparse.Namespace, *, need_report_dir: bool = True) -> Config:
    merged, source = _mapping(a)
    config = Config.from_mapping(merged, source)
    if need_report_dir and config.report_dir is None:
        raise BadInput("--report-dir", f"required (or report_dir in the run file); not set by {source}")
    config.progress = not config.quiet
    config.validate()
    return config


def _run(a: argparse.Namespace) -> int:
    from classroom_probe.runner import run  # noqa: PLC0415  (keeps --help and compare free of aiohttp start-up)

    config = config_from_args(a)
    try:
        result = run(config)
    except ProbeError as exc:
        if config.quiet:
            print(json.dumps({"status": "inconclusive", "checks": [], "report_dir": None, "checks_table": "",
                              "warnings": [], "error": str(exc)}))
        sys.stderr.write(f"probe error: {exc}\n")
        return EXIT_INCONCLUSIVE
    verdict = result.verdict
    folder = str(result.report_dir) if result.report_dir is not None else None
    if config.quiet:
        print(json.dumps({"status": verdict.status, "checks": result.report["verdict"]["checks"],
                          "report_dir": folder, "checks_table": result.checks_table, "warnings": result.warnings}))
    else:
        print(result.checks_table)
        if folder is not None:
            print(f"Reports: {folder}/report.html (and report.json, report.md, checks.txt)")
    return result.exit_code


def _validate(a: argparse.Namespace) -> int:
    config = config_from_args(a, need_report_dir=False)
    print(json.dumps(config.to_runfile(), indent=1))
    return 0


def _compare(a: argparse.Namespace) -> int:
    from classroom_probe.compare import compare  # noqa: PLC0415

    for path in compare(a.a, a.b, a.out):
        print(path)
    return 0


def _schema(a: argparse.Namespace) -> int:
    if a.which == "run-file":
        from classroom_probe.schema import run_file_schema  # noqa: PLC0415

        print(json.dumps(run_file_schema(), indent=1))
    elif a.which == "settings":
        from classroom_probe.schema import settings_markdown  # noqa: PLC0415

        print(settings_markdown(), end="")
    else:
        from classroom_probe.report import report_schema  # noqa: PLC0415

        print(json.dumps(report_schema(), indent=1))
    return 0


def _checks(_: argparse.Namespace) -> int:
    for c in CATALOGUE:
        print(f"{c.id}: {c.title} ({c.bound}imum, {c.unit})\n  {c.what_to_change}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run, "validate": _validate, "compare": _compare, "schema": _schema, "checks": _checks}
    try:
        return commands[args.command](args)
    except BadInput as exc:
        sys.stderr.write(f"bad input: {exc}\n")
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("interrupted: no verdict\n")
        return EXIT_INTERRUPTED
