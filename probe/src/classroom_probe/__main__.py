"""`python -m classroom_probe` entry point."""

import sys

from classroom_probe.cli import main

sys.exit(main())
