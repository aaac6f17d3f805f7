"""Runs every molecule scenario (create, converge, idempotence, verify, destroy) as one test each."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
LOGS = ROOT / ".logs"
SCENARIO_TIMEOUT_S = 1800


def test_scenarios_exist() -> None:
    assert SCENARIOS, "no molecule scenario found: molecule would go untested"


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
