"""The progress watcher the concurrency_probe role runs on the box between two progress lines.

It must end each poll with one JSON line: at once when the run is over (the probe's final report, or a
job that ended without one), else after its wait with the newest report; never an exception.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "concurrency_probe" / "files" / "probe_progress.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("probe_progress", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["probe_progress"] = module
    spec.loader.exec_module(module)
    return module


progress = _load()
RUNNING_JOB = {"started": True, "finished": False, "ansible_job_id": "j1"}
ENDED_JOB = {"rc": 2, "stdout": "", "stderr": "bad input: --base-url: ...", "ansible_job_id": "j1"}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "status.json", tmp_path / "job"


def _write(path: Path, doc: object) -> None:
    path.write_text(json.dumps(doc))


def test_a_final_report_returns_at_once(files: tuple[Path, Path]) -> None:
    status, job = files
    _write(status, {"state": "finished", "status": "pass", "exit_code": 0, "message": "verdict: pass"})
    _write(job, ENDED_JOB)
    started = time.monotonic()
    doc = progress.wait_for_report(status, job, 30)
    assert doc["message"] == "verdict: pass"
    assert time.monotonic() - started < 10


def test_a_job_that_ended_without_a_report_is_exited(files: tuple[Path, Path]) -> None:
    status, job = files
    _write(job, ENDED_JOB)
    doc = progress.wait_for_report(status, job, 30)
    assert doc["state"] == "exited"


def test_a_removed_job_record_is_exited(files: tuple[Path, Path]) -> None:
    status, job = files
    _write(status, {"state": "running", "message": "measuring"})
    assert progress.wait_for_report(status, job, 30)["state"] == "exited"


def test_a_running_job_shows_its_newest_report_after_the_wait(files: tuple[Path, Path]) -> None:
    status, job = files
    _write(job, RUNNING_JOB)
    assert progress.wait_for_report(status, job, 0.2)["state"] == "starting"
    _write(status, {"state": "running", "message": "[ 3.0 s] warm-up"})
    assert progress.wait_for_report(status, job, 0.2)["message"] == "[ 3.0 s] warm-up"


def test_the_command_line_always_prints_one_json_line(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, job = files
    assert progress.main(["probe_progress.py", str(status), str(job), "soon"]) == 0
    assert "WAIT_S must be a number" in json.loads(capsys.readouterr().out)["message"]
    assert progress.main(["probe_progress.py"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "unknown"
    assert progress.main(["probe_progress.py", str(status), str(job), "0"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "exited"
