"""Checks a vLLM server config YAML before it replaces the live one.

Run with the service's venv interpreter, so the pinned vLLM itself judges the options in two steps:
its argument parser (unknown keys, bad values and choices), then its engine-config construction,
which reads the model's config.json and checks the settings against it and against each other
(max_model_len above the model's limit, heads not divisible by the tensor-parallel size, ...).
What is caught here never reaches a crash-looping unit. Exit 0 when the file is usable, 1 with one
readable line on stderr otherwise. Nothing of the service's state is touched: vLLM's caches go to
a temporary folder for the check.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

FORBIDDEN = {
    "api-key": "the API key belongs in the environment file (VLLM_API_KEY), never in the YAML",
    "config": "a config file cannot include another one",
}
# Where vLLM and the libraries it loads would write; the check runs as root and must leave the
# service user's state folder alone.
SCRATCH_VARIABLES = ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT", "XDG_CACHE_HOME", "TRITON_CACHE_DIR")


class ConfigError(Exception):
    """A reason the config must not land."""


@dataclass(frozen=True)
class CheckResult:
    options: int
    model: str
    engine_checked: bool


def load_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError("the config must be a non-empty mapping of vLLM long option names to values")
    return data


def check_policy(data: dict[str, Any]) -> None:
    for key in data:
        reason = FORBIDDEN.get(str(key).replace("_", "-"))
        if reason:
            raise ConfigError(f"option '{key}' is not allowed: {reason}")


def check_model(data: dict[str, Any]) -> str:
    model = str(data.get("model", ""))
    if not model:
        raise ConfigError("option 'model' is missing")
    # A hub id never starts with a slash: anything that does must be a model folder on this box.
    if model.startswith("/"):
        folder = Path(model)
        if not folder.is_dir():
            raise ConfigError(f"model path {model} does not exist on this host")
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model path {model} has no config.json: not a Hugging Face model folder")
    return model


def _raise_config_error(message: str) -> NoReturn:
    raise ConfigError(f"vLLM rejects the options: {message}")


def first_line(exc: BaseException) -> str:
    """The line of an exception a user acts on: pydantic's 'Value error, ...' line when there is one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Value error, "):
            return line.removeprefix("Value error, ").split(" [type=", 1)[0]
    return lines[0] if lines else type(exc).__name__


def parse_with_vllm(path: Path) -> argparse.Namespace:
    # Imported late: it takes seconds and is pointless when the YAML itself is broken.
    flexible = importlib.import_module("vllm.utils.argparse_utils").FlexibleArgumentParser
    try:
        cli_args = importlib.import_module("vllm.entrypoints.launchers.cli_args")
    except ImportError:  # older vLLM releases keep the parser next to the server
        cli_args = importlib.import_module("vllm.entrypoints.openai.cli_args")

    parser: argparse.ArgumentParser = cli_args.make_arg_parser(flexible())
    # argparse prints several screens of usage before its one useful line: keep only that line.
    parser.error = _raise_config_error  # type: ignore[method-assign]
    # vLLM accepts only .yaml/.yml names; Ansible's candidate file has none.
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "candidate.yaml"
        shutil.copyfile(path, named)
        args = parser.parse_args(["--config", str(named)])
    try:
        cli_args.validate_parsed_serve_args(args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"vLLM rejects the options: {first_line(exc)}") from exc
    return args


def build_engine_config(args: argparse.Namespace) -> None:
    """vLLM's own engine-config construction: reads the model's config and checks the layout."""
    arg_utils = importlib.import_module("vllm.engine.arg_utils")
    try:
        engine_args = arg_utils.AsyncEngineArgs.from_cli_args(args)
        engine_args.create_engine_config()
    except Exception as exc:  # vLLM raises ValueError, pydantic errors and others: each is a refusal
        raise ConfigError(f"vLLM rejects the settings for this model: {first_line(exc)}") from exc


def check(path: Path, *, engine: bool = True) -> CheckResult:
    data = load_mapping(path)
    check_policy(data)
    model = check_model(data)
    args = parse_with_vllm(path)
    if engine:
        build_engine_config(args)
    return CheckResult(options=len(data), model=model, engine_checked=engine)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vllm_config_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--parser-only", action="store_true", help="skip the engine-config construction")
    ns = parser.parse_args(argv[1:])
    with tempfile.TemporaryDirectory(prefix="vllm-config-check-") as scratch:
        for name in SCRATCH_VARIABLES:
            os.environ[name] = scratch
        try:
            result = check(ns.config, engine=not ns.parser_only)
        except ConfigError as exc:
            print(f"vLLM config check failed: {exc}", file=sys.stderr)
            return 1
    print(
        f"vLLM config ok: {result.options} options, model {result.model}"
        + ("" if result.engine_checked else " (argument parser only)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
