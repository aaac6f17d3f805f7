"""Never lose a run, never a traceback: outputs checked before the load, a fallback after it, the status file."""

import errno
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from classroom_probe import outputs
from classroom_probe.config import Config
from classroom_probe.errors import BadInput
from classroom_probe.records import RequestRecord
from classroom_probe.runner import run
from classroom_probe.thresholds import PROFILES
from loopback import State

ROOT = Path(__file__).resolve().parents[2]
LAB = replace(PROFILES["lab"], probe_loop_lag_p99_ms_max=None)


def config(base: str, **kw: object) -> Config:
    options: dict[str, object] = {"base_url": base, "model": "ok", "max_tokens": 4, "mode": "batch", "requests": 3,
                                  "concurrency": 2, "warmup": 0.0, "gpu": "off", "metrics_url": "off",
                                  "profile": "lab", "thresholds": LAB}
    options.update(kw)
    return Config(**options)  # type: ignore[arg-type]


def unwritable_dir(tmp_path: Path) -> Path:
    """A folder that exists but takes no file, for root too."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no folder that refuses root's writes here")
        return Path("/sys/kernel")
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_an_unwritable_report_dir_is_found_before_the_load(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, state = loopback
    before = state.requests
    with pytest.raises(BadInput) as err:
        run(config(base, report_dir=unwritable_dir(tmp_path)))
    assert err.value.field == "--report-dir" and "cannot write" in err.value.message
    assert state.requests == before  # nothing was sent: no run to lose


@pytest.mark.parametrize("where", ["report dir is a file", "report.html is a folder", "records.jsonl is a folder",
                                   "status file is a folder"])
def test_outputs_in_the_way_are_bad_input(loopback: tuple[str, State], tmp_path: Path, where: str) -> None:
    base, state = loopback
    report_dir = tmp_path / "r"
    status = tmp_path / "status.json"
    if where == "report dir is a file":
        report_dir.write_text("x")
    elif where == "status file is a folder":
        status.mkdir()
    else:
        (report_dir / where.split(maxsplit=1)[0]).mkdir(parents=True)
    before = state.requests
    with pytest.raises(BadInput) as err:
        run(config(base, report_dir=report_dir, records=True, status_file=status))
    assert err.value.field == ("--status-file" if "status" in where else "--report-dir")
    assert state.requests == before


def test_cli_unwritable_report_dir_exits_2_without_a_traceback(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    env = {"PYTHONPATH": str(ROOT / "probe" / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "classroom_probe", "run", "--base-url", base, "--model", "ok",
                          "--max-tokens", "4", "--mode", "batch", "--requests", "2", "--gpu", "off", "--report-dir",
                          str(unwritable_dir(tmp_path) / "probe"), "--quiet"],
                         capture_output=True, text=True, timeout=60, env=env, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith("bad input: --report-dir: ")


def test_reports_that_cannot_be_written_after_the_load_go_to_a_named_fallback(
        loopback: tuple[str, State], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = loopback

    def disk_full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(outputs, "_atomic_write", disk_full)
    result = run(config(base, report_dir=tmp_path / "r"))
    assert result.exit_code == 0 and result.verdict.status == "pass"
    assert result.report_dir is not None and result.report_dir != tmp_path / "r"
    try:
        assert {p.name for p in result.report_dir.iterdir()} == set(outputs.REPORT_FILES)
        saved = json.loads((result.report_dir / "report.json").read_text())
        assert saved["aggregates"]["requests_ok"] == 3
        assert any(str(result.report_dir) in w and "No space left" in w for w in result.warnings)
        assert str(result.report_dir) in result.checks_table
    finally:
        for p in result.report_dir.iterdir():
            p.unlink()
        result.report_dir.rmdir()


def test_every_server_fault_fails_the_run_even_when_the_probe_lagged(loopback: tuple[str, State]) -> None:
    # The probe's loop is blocked 40 ms per finished request: its lag p99 fails its check, but the server
    # answered every request with HTTP 503, which the probe's slowness cannot explain.
    def slow_hook(_: RequestRecord) -> None:
        end = time.perf_counter() + 0.04
        while time.perf_counter() < end:
            pass

    base, _ = loopback
    result = run(config(base, model="http_503", requests=8, thresholds=PROFILES["classroom"], profile="classroom",
                        gpu="off"), on_record=slow_hook)
    checks = {c.name: c for c in result.verdict.checks}
    assert checks["probe_loop_lag_p99_ms_max"].passed is False
    assert checks["failures_max"].result == "fail"
    assert checks["ttft_p95_ms_max"].result == "void"
    assert result.verdict.status == "fail" and result.exit_code == 1


def test_status_file_follows_the_run_and_ends_with_the_verdict(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    status = tmp_path / "status.json"
    seen: list[dict[str, object]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if status.exists():
                seen.append(json.loads(status.read_text()))  # always whole: replaced by rename
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = run(config(base, model="ok_slow", mode="classroom", students=2, duration=1.5, warmup=1.0,
                            think_min=0.0, think_max=0.1, requests=None, status_file=status,
                            report_dir=tmp_path / "r"))
    finally:
        done.set()
        poller.join()
    final = json.loads(status.read_text())
    assert final["state"] == "finished" and final["status"] == result.verdict.status
    assert final["exit_code"] == result.exit_code and final["report_dir"] == str(tmp_path / "r")
    running = [s for s in seen if s.get("state") == "running"]
    assert running, seen
    assert {s["phase"] for s in running} <= {"warm-up", "measuring", "draining"}
    assert "warm-up" in {s["phase"] for s in running} or "measuring" in {s["phase"] for s in running}
    last = running[-1]
    for key in ("elapsed_s", "time_left_s", "requests_done", "requests_failed", "in_flight", "output_tok_s",
                "message"):
        assert key in last
    assert not list(tmp_path.glob(".status.json*"))  # no temporary file left behind


def test_status_file_says_bad_input(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    status = tmp_path / "status.json"
    with pytest.raises(BadInput):
        run(config(base, model="no-such-model", status_file=status))
    final = json.loads(status.read_text())
    assert final["state"] == "failed" and final["exit_code"] == 2 and "--model" in final["message"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_stops_the_load_at_once_without_a_traceback(loopback: tuple[str, State], tmp_path: Path,
                                                            workers: str) -> None:
    base, state = loopback
    status = tmp_path / "status.json"
    env = {"PYTHONPATH": str(ROOT / "probe" / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "classroom_probe", "run", "--base-url", base, "--model", "ok_slow",
                             "--max-tokens", "40", "--students", "3", "--duration", "60", "--warmup", "0",
                             "--think-min", "0", "--think-max", "0.2", "--gpu", "off", "--profile", "lab",
                             "--workers", workers, "--report-dir", str(tmp_path / "r"), "--status-file", str(status)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and '"running"' not in (status.read_text() if status.exists() else ""):
            time.sleep(0.1)
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted: no verdict"
    assert json.loads(status.read_text())["state"] == "failed"
    time.sleep(0.5)  # a request still finishing may land now; after that, nothing more arrives
    settled = state.requests
    time.sleep(1.0)
    assert state.requests == settled  # no load process lingers
