"""The daily health check (roles/healthcheck/files/healthcheck.py) against the scripted loopback server: the
verdict lands in the history, the trend page is regenerated, a failing check exits 1 (what makes its unit
fail and show in `systemctl --failed`), bad input exits 2 with no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.site.conftest import ROOT, load_file, loopback_url, two_reports  # noqa: F401  (fixtures)

SCRIPT = ROOT / "roles" / "healthcheck" / "files" / "healthcheck.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "probe" / "src")}
hc = load_file(SCRIPT, "healthcheck_script")


def _run_file(tmp: Path, base: str, **thresholds: float | None) -> Path:
    path = tmp / "run.json"
    path.write_text(json.dumps({"base_url": base, "model": "ok", "api": "chat", "mode": "classroom", "students": 2,
                                "max_tokens": 6, "think_min": 0, "think_max": 0.2, "profile": "lab", "gpu": "off",
                                "thresholds": {"probe_loop_lag_p99_ms_max": None, **thresholds}}))
    return path


def _check(tmp: Path, run_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "run", "--dir", str(tmp / "hc"), "--run-file", str(run_file),
                           "--python", sys.executable, "--duration", "2", "--warmup", "0", "--box", "lab-box", *extra],
                          capture_output=True, text=True, env=ENV, timeout=180, check=False)


def test_a_passing_and_a_failing_check_land_in_the_history(loopback_url: str, tmp_path: Path) -> None:  # noqa: F811
    ok = _check(tmp_path, _run_file(tmp_path, loopback_url), "--trigger", "timer")
    assert ok.returncode == 0, ok.stderr
    strict = tmp_path / "strict"
    strict.mkdir()
    bad = _check(tmp_path, _run_file(strict, loopback_url, ttft_p95_ms_max=0.001))
    assert bad.returncode == 1
    assert "health check fail" in bad.stderr
    lines = (tmp_path / "hc" / "history.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["status"] for e in entries] == ["pass", "fail"]
    assert entries[0]["trigger"] == "timer" and entries[1]["trigger"] == "hand"
    assert entries[0]["ttft_p95_ms"] > 0 and entries[0]["student_output_tok_s_p50"] > 0 and entries[0]["failures"] == 0
    assert Path(entries[0]["report_dir"], "report.json").exists()
    page = (tmp_path / "hc" / "trend.html").read_text()
    assert "Daily health check on lab-box" in page and page.count("<svg") == 3
    assert "1 of 2" in page
    assert not any(tag in page for tag in ("<script", "<link", "src=", "href="))


def test_a_server_that_does_not_answer_is_a_failed_check(tmp_path: Path) -> None:
    proc = _check(tmp_path, _run_file(tmp_path, "http://127.0.0.1:9"))
    assert proc.returncode == 1
    entry = json.loads((tmp_path / "hc" / "history.jsonl").read_text().splitlines()[-1])
    assert entry["status"] != "pass" and entry["error"]
    assert "Traceback" not in proc.stderr


def test_missing_inputs_are_named_without_a_traceback(tmp_path: Path) -> None:
    proc = _check(tmp_path, tmp_path / "absent.json")
    assert proc.returncode == 2 and "--run-file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "hc" / "history.jsonl").exists()


def test_history_survives_a_torn_line_and_days_aggregate(tmp_path: Path) -> None:
    folder = tmp_path / "hc"
    folder.mkdir()
    def entry(t: str, status: str, ttft: float, speed: float, fails: int) -> str:
        return json.dumps({"time": t, "day": t[:10], "trigger": "timer", "status": status, "exit_code": 0,
                           "ttft_p95_ms": ttft, "student_output_tok_s_p50": speed, "failures": fails, "requests_ok": 10,
                           "report_dir": "", "error": ""})
    (folder / "history.jsonl").write_text("\n".join([
        entry("2026-01-05T07:30:00Z", "pass", 100, 30, 0), entry("2026-01-05T12:00:00Z", "fail", 900, 12, 3),
        '{"time": "2026-01-06T07:3', entry("2026-01-06T07:30:00Z", "pass", 120, 28, 1)]) + "\n")
    days = hc.per_day(hc.read_history(folder / "history.jsonl"))
    assert [(d.day, d.checks, d.passed, d.ttft_p95_ms, d.student_output_tok_s_p50, d.failures) for d in days] == [
        ("2026-01-05", 2, 1, 900, 12, 3), ("2026-01-06", 1, 1, 120, 28, 1)]
    assert hc.write_trend(folder, "box").read_text().count("<tr>") == 3
