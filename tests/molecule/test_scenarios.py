"""Runs every molecule scenario (create, converge, idempotence, verify, destroy) as one test each.

Scenarios listed in PENDING are not yet part of `make test`: each has not completed a full run and/or does
not yet fit the test-time budget. They run with CC_ALL_SCENARIOS=1 (or `molecule test -s <name>`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALL_SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
# Name -> why it is not in `make test` yet. Remove an entry once its scenario passes whole within its budget.
PENDING: dict[str, str] = {}
SCENARIOS = (
    ALL_SCENARIOS
    if os.environ.get("CC_ALL_SCENARIOS") == "1"
    else [name for name in ALL_SCENARIOS if name not in PENDING]
)
LOGS = ROOT / ".logs"
SCENARIO_TIMEOUT_S = 1800


def test_scenarios_exist() -> None:
    assert SCENARIOS, "no molecule scenario found: molecule would go untested"


def test_pending_scenarios_exist() -> None:
    stale = sorted(set(PENDING) - set(ALL_SCENARIOS))
    assert not stale, f"PENDING names scenarios that do not exist: {stale}"


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str) -> None:
    LOGS.mkdir(exist_ok=True)
    log = LOGS / f"molecule-{scenario}.log"
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0"}
    with log.open("w") as fh:
        proc = subprocess.run(
            ["molecule", "test", "-s", scenario],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=SCENARIO_TIMEOUT_S,
            check=False,
        )
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
    assert proc.returncode == 0, f"molecule test -s {scenario} failed (full log: {log}):\n{tail}"
