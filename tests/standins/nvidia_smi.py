#!/usr/bin/python3
"""TEST STAND-IN for nvidia-smi, installed as /usr/bin/nvidia-smi in molecule containers only.

It is not NVIDIA's tool. It replays transcripts (tests/fixtures/nvidia-smi/<host>/): each file
starts with ``# command: nvidia-smi <args>``, then ``# source: recorded ...`` or
``# source: synthetic ...``, then the output, then ``exit=<code>``. A command line without a
transcript fails loudly (exit 97), so a change in what the module runs cannot pass silently
against stale fixtures. The unit tests read transcripts through ``load`` too: one parser.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

FOLDER = Path(os.environ.get("NVIDIA_SMI_REPLAY_DIR", "/usr/local/share/nvidia-smi-replay"))
UNKNOWN_COMMAND_EXIT = 97
COMMAND = "# command: "
SOURCE = "# source: "


def load(path: Path) -> tuple[str, str, int] | None:
    """(command line, output, exit code) of one transcript, or None when it is not one."""
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) < 3 or not lines[0].startswith(COMMAND) or not lines[1].startswith(SOURCE):
        return None
    if not lines[-1].startswith("exit="):
        return None
    return lines[0][len(COMMAND) :].strip(), "".join(lines[2:-1]), int(lines[-1].strip()[len("exit=") :])


def main() -> int:
    wanted = shlex.join(["nvidia-smi", *sys.argv[1:]])
    for path in sorted(FOLDER.glob("*.txt")):
        entry = load(path)
        if entry and entry[0] == wanted:
            sys.stdout.write(entry[1])
            return entry[2]
    sys.stderr.write(f"nvidia-smi TEST STAND-IN: no transcript in {FOLDER} for: {wanted}\n")
    return UNKNOWN_COMMAND_EXIT


if __name__ == "__main__":
    sys.exit(main())
