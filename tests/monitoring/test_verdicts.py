"""The verdicts script (roles/monitoring/files/classroom_verdicts.py): the newest gate report and daily history line
as metrics in a file node-exporter's textfile collector reads, written atomically, never failing on a broken file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.conftest import FILES, load_script, promtool

verdicts = load_script("classroom_verdicts")


def report(folder: Path, status: str, finished: str = "2026-11-30T11:33:49.172326+00:00", ttft_p95: float = 37.8,
           tok_s_p50: float = 255.0, failures: int = 0) -> Path:
    folder.mkdir(parents=True)
    doc = {"schema_version": 2, "finished_at": finished, "verdict": {"status": status, "checks": []},
           "aggregates": {"failures_total": failures, "latency_ms": {"ttft": {"p95": ttft_p95}},
                          "student_output_tok_s": {"p50": tok_s_p50}}}
    (folder / "report.json").write_text(json.dumps(doc))
    return folder


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def run(tmp_path: Path, reports: Path, history: Path) -> str:
    out = tmp_path / "textfile" / "classroom.prom"
    out.parent.mkdir(exist_ok=True)
    assert verdicts.main(["--reports", str(reports), "--history", str(history), "--out", str(out)]) == 0
    assert (out.stat().st_mode & 0o777) == 0o644, "node-exporter's user must read it"
    assert [p.name for p in out.parent.iterdir()] == ["classroom.prom"], "no temporary file left behind"
    return out.read_text()


def test_newest_gate_and_last_daily_line(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    report(reports / "20261129T090000Z", "fail")
    newest = report(reports / "20261130T113312Z", "pass")
    (reports / "20261130T120000Z").mkdir()  # a run still going: no report yet
    history = tmp_path / "history.jsonl"
    history.write_text(
        json.dumps({"time": "2026-11-29T06:00:00Z", "status": "pass"}) + "\n"
        + json.dumps({"time": "2026-11-30T06:00:00Z", "status": "fail", "ttft_p95_ms": 812.0,
                      "student_output_tok_s_p50": 12.5, "failures": 3, "report_dir": "/r/daily"}) + "\n\n")
    got = samples(run(tmp_path, reports, history))
    gate, daily = (("check", "gate"),), (("check", "daily"),)
    assert got[("classroom_check_present", gate)] == 1.0
    assert got[("classroom_check_status", (("check", "gate"), ("status", "pass")))] == 1.0
    assert got[("classroom_check_status", (("check", "gate"), ("status", "fail")))] == 0.0
    assert got[("classroom_check_status", (("check", "gate"), ("status", "inconclusive")))] == 0.0
    assert got[("classroom_check_timestamp_seconds", gate)] == pytest.approx(1796038429.172326)
    assert got[("classroom_check_ttft_p95_seconds", gate)] == pytest.approx(0.0378)
    assert got[("classroom_check_student_output_tokens_per_second", gate)] == 255.0
    assert got[("classroom_check_failures", gate)] == 0.0
    assert got[("classroom_check_info", (("check", "gate"), ("report_dir", str(newest))))] == 1.0
    assert got[("classroom_check_status", (("check", "daily"), ("status", "fail")))] == 1.0
    assert got[("classroom_check_timestamp_seconds", daily)] == 1796018400.0
    assert got[("classroom_check_ttft_p95_seconds", daily)] == pytest.approx(0.812)
    assert got[("classroom_check_failures", daily)] == 3.0
    assert got[("classroom_check_info", (("check", "daily"), ("report_dir", "/r/daily")))] == 1.0
    assert got[("classroom_check_unreadable_files", gate)] == 0.0


def test_nothing_yet_and_broken_files(tmp_path: Path) -> None:
    """No folder, no history: present 0. A broken newest file is passed over (and counted), never fatal."""
    got = samples(run(tmp_path, tmp_path / "missing", tmp_path / "missing.jsonl"))
    assert got[("classroom_check_present", (("check", "gate"),))] == 0.0
    assert got[("classroom_check_present", (("check", "daily"),))] == 0.0
    assert not any(name == "classroom_check_status" for name, _ in got)
    reports = tmp_path / "reports"
    report(reports / "20261129T090000Z", "inconclusive")
    (reports / "20261130T090000Z").mkdir()
    (reports / "20261130T090000Z" / "report.json").write_text("{not json")
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"time": "2026-11-30T06:00:00+00:00", "status": "pass"}) + "\n{\"status\": \n")
    got = samples(run(tmp_path, reports, history))
    assert got[("classroom_check_status", (("check", "gate"), ("status", "inconclusive")))] == 1.0
    assert got[("classroom_check_unreadable_files", (("check", "gate"),))] == 1.0
    assert got[("classroom_check_status", (("check", "daily"), ("status", "pass")))] == 1.0
    assert got[("classroom_check_unreadable_files", (("check", "daily"),))] == 1.0
    # A verdict without figures publishes its status only: no made-up zero.
    assert ("classroom_check_ttft_p95_seconds", (("check", "daily"),)) not in got


def test_a_long_history_is_read_from_its_tail(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    line = json.dumps({"time": "2026-01-01T06:00:00Z", "status": "pass", "pad": "x" * 500})
    history.write_text("\n".join([line] * 400) + "\n" + json.dumps({"time": "2026-11-30T06:00:00Z", "status": "fail"}))
    assert history.stat().st_size > verdicts.HISTORY_TAIL_BYTES
    found = verdicts.newest_daily(history)
    assert found.verdict is not None and found.verdict.status == "fail" and found.unreadable == 0


def odd_text(tmp_path: Path) -> tuple[Path, str]:
    reports = tmp_path / 'odd "reports"\\'
    report(reports / "20261130T113312Z", "weird\nstatus")
    return reports, run(tmp_path, reports, tmp_path / "none.jsonl")


def test_labels_are_escaped(tmp_path: Path) -> None:
    reports, text = odd_text(tmp_path)
    got = samples(text)
    assert got[("classroom_check_status", (("check", "gate"), ("status", "weird\nstatus")))] == 1.0
    assert got[("classroom_check_info", (("check", "gate"), ("report_dir", str(reports / "20261130T113312Z"))))] == 1.0


def test_promtool_accepts_the_file(tmp_path: Path) -> None:
    _, text = odd_text(tmp_path)
    proc = promtool("check", "metrics", stdin=text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_folder_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(FILES / "classroom_verdicts.py"), "--reports", str(tmp_path),
                           "--history", str(tmp_path / "h"), "--out", str(tmp_path / "no" / "such" / "x.prom")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("cannot write") and "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []
