"""The concurrency_probe role judges values given on the command line (`-e name=value`, which are text).

Each case runs `ansible-playbook` on the controller itself against the role's settings entry point: its
own checks, then the run file, written only when the probe (from probe/src, in a stand-in venv) accepts
it. No load is started and nothing is installed. What must hold:
- numbers, booleans and threshold values given as text land in the run file as numbers and booleans;
- a value of the right type that the probe refuses fails naming the role's variable, and the last good
  run file stays;
- a value that is not of the variable's type fails in argument_specs, naming the variable;
- check mode on a fresh box writes nothing and does not fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = Path(__file__).with_name("settings.yml")
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
SECRET = "key-from-the-command-line"


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A stand-in for the box: the probe's venv is this Python with probe/src on its path."""
    python = tmp_path / "home" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT / "probe" / "src"}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return tmp_path


def play(box: Path, *extra: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    args = [
        str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(PLAY),
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", f"concurrency_probe_home={box / 'home'}",
        "-e", f"concurrency_probe_config_dir={box / 'etc'}",
        "-e", f"concurrency_probe_remote_report_dir={box / 'reports'}",
        "-e", "concurrency_probe_model=classroom-tiny",
        *extra,
    ]
    if check:
        args.append("--check")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The output with the callback's line wrapping undone, so a message can be matched whole."""
    return " ".join((proc.stdout + proc.stderr).split())


def test_text_values_land_as_numbers_and_booleans(box: Path) -> None:
    proc = play(
        box,
        "-e", "concurrency_probe_students=30",
        "-e", "concurrency_probe_think_min=0.5",
        "-e", "concurrency_probe_warmup=0",
        "-e", "concurrency_probe_records=yes",
        "-e", "concurrency_probe_continuous_usage=false",
        "-e", "concurrency_probe_connect_timeout=3",
        "-e", f"concurrency_probe_api_key={SECRET}",
        "-e", '{"concurrency_probe_thresholds": {"failures_max": "2", "ttft_p95_ms_max": "800",'
              ' "gpu_util_mean_min_pct": null}, "concurrency_probe_headers": {"X-Room": 12}}',
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((box / "etc" / "run.json").read_text())
    assert run["students"] == 30 and type(run["students"]) is int
    assert run["think_min"] == 0.5
    assert run["warmup"] == 0 and type(run["warmup"]) is int
    assert run["records"] is True
    assert run["continuous_usage"] is False
    assert run["connect_timeout"] == 3.0 and type(run["connect_timeout"]) is float
    assert run["thresholds"] == {"failures_max": 2, "ttft_p95_ms_max": 800.0, "gpu_util_mean_min_pct": None}
    assert type(run["thresholds"]["failures_max"]) is int
    assert run["headers"] == {"X-Room": "12"}
    # Only the classroom shape's settings: another shape's would be recorded as if used.
    assert "requests" not in run and "ramp_max" not in run
    # The key stays in its own private file; neither the run file nor the log shows it.
    key_file = box / "etc" / "api-key"
    assert run["api_key_file"] == str(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert SECRET not in (box / "etc" / "run.json").read_text()
    assert SECRET not in proc.stdout + proc.stderr


def test_a_refused_value_names_the_variable_and_keeps_the_last_run_file(box: Path) -> None:
    last_good = '{"kept": true}\n'
    (box / "etc").mkdir()
    (box / "etc" / "run.json").write_text(last_good)
    proc = play(box, "-e", "concurrency_probe_students=-1")
    assert proc.returncode != 0
    assert ("Concurrency probe settings refused on localhost: concurrency_probe_students: must be a whole number "
            "from 1 to 100,000, got -1") in one_line(proc)
    assert (box / "etc" / "run.json").read_text() == last_good


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            ["-e", '{"concurrency_probe_thresholds": {"ttft_p95_ms_max": "-5"}}'],
            "concurrency_probe_thresholds.ttft_p95_ms_max: must be a finite number >= 0",
            id="threshold",
        ),
        pytest.param(
            ["-e", "concurrency_probe_mode=ramp", "-e", "concurrency_probe_ramp_start=5",
             "-e", "concurrency_probe_ramp_max=2"],
            "concurrency_probe_ramp_max: must be >= concurrency_probe_ramp_start",
            id="rule-between-two",
        ),
    ],
)
def test_the_probe_names_the_variable(box: Path, extra: list[str], message: str) -> None:
    proc = play(box, *extra)
    assert proc.returncode != 0
    assert message in one_line(proc)
    assert not (box / "etc" / "run.json").exists()


def test_text_that_is_no_number_fails_in_argument_specs(box: Path) -> None:
    proc = play(box, "-e", "concurrency_probe_students=abc")
    assert proc.returncode != 0
    assert "argument 'concurrency_probe_students' is of type str and we were unable to convert to int" in one_line(proc)
    assert not (box / "etc").exists()


def test_a_time_limit_shorter_than_the_load_is_refused(box: Path) -> None:
    proc = play(box, "-e", "concurrency_probe_run_timeout=60", "-e", "concurrency_probe_duration=120")
    assert proc.returncode != 0
    assert "concurrency_probe_run_timeout=60 s cannot hold this run" in one_line(proc)
    assert not (box / "etc").exists()


def test_check_mode_writes_nothing_on_a_fresh_box(box: Path) -> None:
    proc = play(box, "-e", "concurrency_probe_students=30", "-e", f"concurrency_probe_api_key={SECRET}", check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Write the run file" in proc.stdout
    assert not (box / "etc").exists() and not (box / "reports").exists()
    assert SECRET not in proc.stdout + proc.stderr
