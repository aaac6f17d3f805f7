import json
from pathlib import Path

import pytest
from classroom_probe.cli import build_parser, config_from_args
from classroom_validation.probe_run import ProbeLoad, check, key_figures, outcome_from, outcome_from_role, probe_command

LOADS = [
    ProbeLoad("c24", "classroom", 256, students=24, duration=60, warmup=10),
    ProbeLoad("batch", "batch", 64, requests=5000, concurrency=128, duration=150),
    ProbeLoad("kill", "classroom", 1024, students=48, duration=40, warmup=0.0),
]


@pytest.mark.parametrize("load", LOADS, ids=lambda load: load.name)
def test_every_load_is_accepted_by_the_probes_own_cli(load, tmp_path):
    command = probe_command("/venv/bin/python", load, "http://127.0.0.1:8000", "gemma-3-4b-dummy", tmp_path)
    assert command[:4] == ["/venv/bin/python", "-m", "classroom_probe", "run"]
    config = config_from_args(build_parser().parse_args(command[3:]))  # validates: raises naming the field
    assert config.mode == load.mode
    assert config.gpu == "auto"
    assert config.metrics_url == "auto"
    assert config.quiet
    assert config.max_tokens == load.max_tokens
    if load.mode == "batch":
        assert (config.requests, config.batch_concurrency, config.batch_time_limit) == (5000, 128, 150)
    else:
        assert config.students == load.students


REPORT = {
    "aggregates": {
        "requests_ok": 812, "output_tok_s": 5120.5, "requests_per_s": 13.5,
        "latency_ms": {"ttft": {"p50": 20.1, "p95": 61.0}, "tpot": {"p50": 3.4}},
        "student_output_tok_s": {"p50": 290.2},
    },
    "failures": {"total": 3, "by_kind": {"error_after_tokens": 3}},
    "gpu": {"source": "nvml", "gpus": [{"index": 0, "util_mean_pct_window": 71.5},
                                       {"index": 1, "util_mean_pct_window": 70.9}]},
    "server": {"available": True, "cross_check": {"detail": "agrees"}},
    "probe_health": {"loop_lag_ms": {"p99": 1.2}},
    "verdict": {"status": "fail", "checks": [{"name": "failures_max", "passed": False}]},
}


def test_key_figures_come_from_the_report():
    f = key_figures(REPORT)
    assert f["ttft_p95_ms"] == 61.0
    assert f["student_output_tok_s_p50"] == 290.2
    assert f["failures_by_kind"] == {"error_after_tokens": 3}
    assert f["gpu_util_mean_pct"] == {"0": 71.5, "1": 70.9}
    assert f["metrics_scraped"] is True


def test_outcome_reads_the_quiet_line_and_the_report(tmp_path: Path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    quiet = json.dumps({"status": "fail", "checks": [{"name": "gpu_util_balance_max_ratio", "passed": True}]})
    o = outcome_from("c24", ["python"], tmp_path, exit_code=1, stdout="progress...\n" + quiet + "\n", stderr="")
    assert o.status == "fail"
    assert check(o, "gpu_util_balance_max_ratio") == {"name": "gpu_util_balance_max_ratio", "passed": True}
    assert o.figures["output_tok_s"] == 5120.5


def test_outcome_without_report_or_exit_code_is_an_error(tmp_path: Path):
    o = outcome_from("kill", ["python"], tmp_path, exit_code=None, stdout="", stderr="killed")
    assert o.status == "error"
    assert o.figures == {}
    assert outcome_from("x", [], tmp_path, exit_code=2, stdout="", stderr="bad input").status == "error"
    assert outcome_from("x", [], tmp_path, exit_code=3, stdout="", stderr="").status == "inconclusive"


def test_a_role_run_is_read_from_its_newest_report_of_this_run(tmp_path: Path):
    runs = tmp_path / "gate" / "c24"
    for stamp, status in (("20261123T070000Z", "pass"), ("20261123T071500Z", "fail")):
        (runs / stamp).mkdir(parents=True)
        (runs / stamp / "report.json").write_text(json.dumps({**REPORT, "verdict": {"status": status, "checks": []}}))
        (runs / stamp / "report.md").write_text(f"# {status}\n")
    out = tmp_path / "results" / "probe" / "c24"
    o = outcome_from_role("c24", runs, out, since="2026-11-23T07:10:00+00:00")
    assert o is not None
    assert (o.status, o.exit_code) == ("fail", 1)
    assert o.figures["requests_ok"] == 812
    assert (out / "report.md").read_text() == "# fail\n"
    # A run that wrote nothing never borrows the report of an earlier run.
    assert outcome_from_role("c24", runs, out, since="2026-11-23T08:00:00+00:00") is None
    assert outcome_from_role("c48", tmp_path / "gate" / "c48", out, since="2026-11-23T07:00:00+00:00") is None
