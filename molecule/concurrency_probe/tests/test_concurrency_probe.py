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
key_file = os.stat("/etc/classroom-probe/api-key")
runs = sorted(d for d in os.listdir(reports) if os.path.isdir(os.path.join(reports, d)))
leaks = [p for p in glob.glob(reports + "/*/*") if key in open(p, errors="replace").read()]
active = subprocess.run(["systemctl", "is-active", "fake-openai.service"], capture_output=True, text=True)
print(json.dumps({
    "installed": installed.stdout.strip(),
    "wheel_sha": [hashlib.sha256(open(w, "rb").read()).hexdigest() for w in wheels],
    "record": json.load(open(venv + "/.python_app.json")),
    "thresholds": json.load(open("/etc/classroom-probe/thresholds.json")),
    "thresholds_mode": os.stat("/etc/classroom-probe/thresholds.json").st_mode & 0o777,
    "key_mode": key_file.st_mode & 0o777,
    "key_uid": key_file.st_uid,
    "key": open("/etc/classroom-probe/api-key").read(),
    "runs": {r: sorted(os.listdir(os.path.join(reports, r))) for r in runs},
    "leaks": leaks,
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


def test_thresholds_file_holds_the_overrides_only(box):
    assert box["thresholds_mode"] == 0o644
    assert box["thresholds"] == {
        "gpu_util_balance_max_ratio": None,
        "gpu_util_mean_min_pct": None,
        "ttft_p95_ms_max": 1000,
        "student_output_tok_s_min": 1,
        "min_requests": 1,
        "probe_loop_lag_p99_ms_max": 1000,
    }


def test_api_key_file_is_private(box):
    assert (box["key_uid"], box["key_mode"], box["key"]) == (0, 0o600, KEY)


def test_api_key_never_lands_in_a_report(box):
    assert box["leaks"] == []
    for run in _local_runs():
        for path in run.iterdir():
            assert KEY not in path.read_text(errors="replace"), path


def test_each_run_has_its_own_remote_folder(box):
    # Converge and idempotence each gate the healthy and the slow server.
    assert len(box["runs"]) >= 4
    for run, files in box["runs"].items():
        assert {"report.json", "report.md", "report.html"} <= set(files), run


def test_reports_fetched_with_the_schema():
    runs = _local_runs()
    statuses = []
    for run in runs:
        assert {"report.json", "report.md", "report.html"} <= {p.name for p in run.iterdir()}, run
        report = json.loads((run / "report.json").read_text())
        assert isinstance(report["schema_version"], int)
        verdict = report["verdict"]
        statuses.append(verdict["status"])
        for check in verdict["checks"]:
            assert {"name", "measured", "limit", "passed", "detail"} <= set(check), check
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
