#!/usr/bin/python3
"""TEST STAND-IN for nvidia-smi, installed as /usr/bin/nvidia-smi in molecule containers only.

It is not NVIDIA's tool. It replays recorded transcripts: each file in the transcript folder
starts with ``# command: nvidia-smi <args>``, then the output, then ``exit=<code>``. A command
line without a transcript fails loudly (exit 97), so a change in what the module runs cannot
pass silently against stale fixtures.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

FOLDER = Path(os.environ.get("NVIDIA_SMI_REPLAY_DIR", "/usr/local/share/nvidia-smi-replay"))
UNKNOWN_COMMAND_EXIT = 97


def load(path: Path) -> tuple[str, str, int] | None:
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) < 2 or not lines[0].startswith("# command: ") or not lines[-1].startswith("exit="):
        return None
    return lines[0][len("# command: ") :].strip(), "".join(lines[1:-1]), int(lines[-1].strip()[len("exit=") :])


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
