"""What the concurrency_probe role leaves behind on the box and on the controller after converge."""

import json
import os
import shlex
from pathlib import Path

import pytest

VENV = "/opt/classroom-probe/venv"
REMOTE_REPORTS = "/var/lib/classroom-probe/reports"
KEY = "molecule-test-key"

# Gathers the box's state in one round trip: with the ansible backend every host.* call is a connection.
STATE_SCRIPT = r"""
import glob, hashlib, json, os, subprocess, sys
venv, reports, key = sys.argv[1:4]
wheels = glob.glob("/srv/probe-wheelhouse/classroom_probe-0.1.0-*.whl")
code = "import classroom_probe, aiohttp; print(classroom_probe.__version__)"
installed = subprocess.run([venv + "/bin/python", "-c", code], capture_output=True, text=True)
def mode(path):
    st = os.stat(path)
    return [st.st_uid, st.st_mode & 0o777]
runs = sorted(d for d in os.listdir(reports) if os.path.isdir(os.path.join(reports, d)))
leaks = [p for p in glob.glob(reports + "/*/*") + glob.glob("/etc/classroom-probe*/run.json")
         if key in open(p, errors="replace").read()]
active = subprocess.run(["systemctl", "is-active", "fake-openai.service"], capture_output=True, text=True)
print(json.dumps({
    "installed": installed.stdout.strip(),
    "wheel_sha": [hashlib.sha256(open(w, "rb").read()).hexdigest() for w in wheels],
    "record": json.load(open(venv + "/.python_app.json")),
    "run_files": {d: json.load(open(d + "/run.json")) for d in ("/etc/classroom-probe", "/etc/classroom-probe-slow")},
    "run_file_mode": mode("/etc/classroom-probe/run.json"),
    "old_thresholds_file": os.path.exists("/etc/classroom-probe/thresholds.json"),
    "key_mode": mode("/etc/classroom-probe/api-key"),
    "key": open("/etc/classroom-probe/api-key").read(),
    "slow_key": os.path.exists("/etc/classroom-probe-slow/api-key"),
    "runs": {r: sorted(os.listdir(os.path.join(reports, r))) for r in runs},
    "statuses": {r: json.load(open(os.path.join(reports, r, "status.json"))) for r in runs
                 if os.path.exists(os.path.join(reports, r, "status.json"))},
    "leaks": leaks,
    "jobs": glob.glob(os.path.expanduser("~/.ansible_async/*")),
    "server": active.stdout.strip(),
}))
"""


@pytest.fixture(scope="module")
def box(host):
    command = f"/usr/bin/python3 -c {shlex.quote(STATE_SCRIPT)} {VENV} {REMOTE_REPORTS} {KEY}"
    return json.loads(host.check_output(command))


def _local_runs() -> list[Path]:
    base = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "concurrency_probe-box"
    return sorted(p for p in base.iterdir() if p.is_dir())


def test_probe_installed_at_pinned_version(box):
    assert box["installed"] == "0.1.0"


def test_probe_came_from_the_wheelhouse(box):
    # The install record (python_app) holds the mounted wheel's checksum: the probe and aiohttp were installed
    # with --no-index from that folder.
    record = box["record"]
    assert box["wheel_sha"] == [record["wheel_sha256"]]
    assert (record["package"], record["version"], record["source"]) == ("classroom_probe", "0.1.0", "wheelhouse")


THRESHOLDS = {
    "gpu_util_balance_max_ratio": None,
    "gpu_util_mean_min_pct": None,
    "ttft_p95_ms_max": 1000.0,
    "student_output_tok_s_min": 1.0,
    "min_requests": 1,
    "probe_loop_lag_p99_ms_max": 1000.0,
}


def test_each_gate_has_one_run_file_with_its_settings(box):
    healthy, slow = box["run_files"]["/etc/classroom-probe"], box["run_files"]["/etc/classroom-probe-slow"]
    assert box["run_file_mode"] == [0, 0o644]
    # The healthy gate's settings, not the refused -3 students of the negative case that came after it.
    assert (healthy["base_url"], healthy["students"], healthy["records"]) == ("http://127.0.0.1:18001", 4, True)
    assert healthy["headers"] == {"X-Classroom": "molecule"}
    assert healthy["api_key_file"] == "/etc/classroom-probe/api-key"
    assert (slow["base_url"], slow["students"], slow["records"]) == ("http://127.0.0.1:18002", 3, False)
    assert "api_key_file" not in slow and not box["slow_key"]
    assert healthy["thresholds"] == slow["thresholds"] == THRESHOLDS
    # The report folder is the base one: each run names its own <timestamp> folder on the command line.
    assert healthy["report_dir"] == REMOTE_REPORTS
    assert not box["old_thresholds_file"]


def test_api_key_file_is_private(box):
    assert (box["key_mode"], box["key"]) == ([0, 0o600], KEY)


def test_api_key_never_lands_in_a_report(box):
    assert box["leaks"] == []
    for run in _local_runs():
        for path in run.iterdir():
            assert KEY not in path.read_text(errors="replace"), path


def test_each_run_has_its_own_remote_folder(box):
    # Converge and idempotence each gate the healthy and the slow server; the refused -3 students started none.
    assert len(box["runs"]) == 4
    for run, files in box["runs"].items():
        assert {"report.json", "report.md", "report.html", "checks.txt", "status.json"} <= set(files), run


def test_status_file_ends_with_the_verdict(box):
    # The progress the role followed: the probe's last status document holds the verdict and the exit code.
    finals = sorted((s["state"], s["status"], s["exit_code"]) for s in box["statuses"].values())
    assert finals == [("finished", "fail", 1)] * 2 + [("finished", "pass", 0)] * 2
    for run, status in box["statuses"].items():
        assert status["report_dir"] == f"{REMOTE_REPORTS}/{run}"


def test_background_jobs_are_cleaned_up(box):
    assert box["jobs"] == []


def test_reports_fetched_with_the_schema():
    runs = _local_runs()
    statuses = []
    for run in runs:
        assert {"report.json", "report.md", "report.html", "checks.txt"} <= {p.name for p in run.iterdir()}, run
        report = json.loads((run / "report.json").read_text())
        assert isinstance(report["schema_version"], int)
        verdict = report["verdict"]
        statuses.append(verdict["status"])
        for check in verdict["checks"]:
            assert {"id", "name", "title", "measured", "limit", "result", "detail"} <= set(check), check
        assert (run / "checks.txt").read_text().startswith(f"Verdict: {verdict['status'].upper()}")
        assert "<html" in (run / "report.html").read_text().lower()
    assert sorted(statuses) == ["fail", "fail", "pass", "pass"]


def test_records_fetched_when_asked():
    with_records = [run for run in _local_runs() if (run / "records.jsonl").exists()]
    assert len(with_records) == 2, "the healthy runs ask for records.jsonl, the slow ones do not"
    lines = (with_records[-1] / "records.jsonl").read_text().splitlines()
    assert lines
    json.loads(lines[0])


def test_stand_in_server_still_runs(box):
    assert box["server"] == "active"
