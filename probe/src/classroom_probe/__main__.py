"""`python -m classroom_probe` entry point."""

import sys

from classroom_probe.cli import main

# Guarded: load processes are started with "spawn", which imports this module again under another name.
if __name__ == "__main__":
    sys.exit(main())
