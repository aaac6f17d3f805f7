"""Checks a vLLM server config YAML before it replaces the live one.

Run with the service's venv interpreter: vLLM's own argument parser judges the options, so a key
the pinned version does not know, a bad value or a missing local model fails here, not in a
crash-looping unit. Exit 0 when the file is usable, 1 with one readable line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import importlib
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


class ConfigError(Exception):
    """A reason the config must not land."""


@dataclass(frozen=True)
class CheckResult:
    options: int
    model: str


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


def check_with_vllm(path: Path) -> None:
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
        raise ConfigError(f"vLLM rejects the options: {exc}") from exc


def check(path: Path) -> CheckResult:
    data = load_mapping(path)
    check_policy(data)
    model = check_model(data)
    check_with_vllm(path)
    return CheckResult(options=len(data), model=model)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: vllm_config_check.py CONFIG.yaml", file=sys.stderr)
        return 2
    try:
        result = check(Path(argv[1]))
    except ConfigError as exc:
        print(f"vLLM config check failed: {exc}", file=sys.stderr)
        return 1
    print(f"vLLM config ok: {result.options} options, model {result.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
