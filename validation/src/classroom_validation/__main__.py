"""`python -m classroom_validation`: see classroom_validation.cli."""

from classroom_validation.cli import main

raise SystemExit(main())
