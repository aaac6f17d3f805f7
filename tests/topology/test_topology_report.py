"""The layout comparison: ranking, recommendation, prediction error and the written files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/topology/files/topology_report.py"
_spec = importlib.util.spec_from_file_location("topology_report", SCRIPT)
assert _spec and _spec.loader
report = importlib.util.module_from_spec(_spec)
sys.modules["topology_report"] = report
_spec.loader.exec_module(report)

THRESHOLDS = {"ttft_p95_ms_max": 500.0, "student_output_tok_s_min": 30.0}


def _probe_report(path: Path, steps: list[tuple[int, float, float, float, bool]]) -> str:
    passing = [s[0] for s in steps if s[4]]
    data = {
        "config": {"thresholds": THRESHOLDS},
        "gpu": {"driver_version": "580.159.04", "gpus": [{"name": "NVIDIA H200"}, {"name": "NVIDIA H200"}]},
        "server": {"version": "0.26.0"},
        "load": {
            "ramp": {
                "largest_passing_students": max(passing) if passing else 0,
                "steps": [
                    {
                        "students": n,
                        "ttft_p95_ms": t,
                        "student_output_tok_s_p50": s,
                        "output_tok_s": o,
                        "failures": 0,
                        "passed": ok,
                    }
                    for n, t, s, o, ok in steps
                ],
            }
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def _preflight(path: Path, largest: int | None, profile: str = "gpu") -> str:
    data: dict[str, Any] = {"profile": profile}
    if largest is not None:
        data["capacity"] = {"largest_class": largest, "limited_by": "answer speed", "estimate": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def _runs(tmp_path: Path) -> dict[str, Any]:
    tp = _probe_report(
        tmp_path / "tp/report.json",
        [
            (48, 35, 210, 4000, True),
            (96, 80, 190, 7000, True),
            (192, 300, 175, 12000, True),
            (288, 700, 120, 12300, False),
        ],
    )
    dp = _probe_report(
        tmp_path / "dp/report.json",
        [
            (48, 36, 215, 4100, True),
            (96, 70, 205, 8000, True),
            (192, 200, 201, 14000, True),
            (288, 450, 160, 20000, True),
        ],
    )
    return {
        "host": "gpu-box",
        "class_size": 96,
        "inventory_layout": {
            "name": "TP=2",
            "tensor_parallel_size": 2,
            "pipeline_parallel_size": 1,
            "data_parallel_size": 1,
        },
        "ramp": {"start": 48, "step": 48, "max": 288, "step_duration_s": 30},
        "conditions": {"vllm_package": "vllm", "vllm_version": "0.26.0", "model": "gemma", "dtype": "auto"},
        "runs": [
            {
                "layout": {
                    "name": "DP=2",
                    "tensor_parallel_size": 1,
                    "pipeline_parallel_size": 1,
                    "data_parallel_size": 2,
                },
                "started": True,
                "report": dp,
                "preflight": _preflight(tmp_path / "dp/preflight.json", 320),
            },
            {
                "layout": {
                    "name": "PP=2",
                    "tensor_parallel_size": 1,
                    "pipeline_parallel_size": 2,
                    "data_parallel_size": 1,
                },
                "started": False,
                "error": "Deploy the layout: the engine refused pipeline parallelism",
                "preflight": _preflight(tmp_path / "pp/preflight.json", 300),
            },
            {
                "layout": {
                    "name": "TP=2",
                    "tensor_parallel_size": 2,
                    "pipeline_parallel_size": 1,
                    "data_parallel_size": 1,
                },
                "started": True,
                "report": tp,
                "preflight": _preflight(tmp_path / "tp/preflight.json", 240),
            },
        ],
    }


def test_the_layout_with_the_largest_passing_class_wins(tmp_path: Path) -> None:
    c = report.build(_runs(tmp_path))
    assert [r.name for r in c.ranking] == ["DP=2", "TP=2", "PP=2"]
    assert c.winner == {"name": "DP=2", "tensor_parallel_size": 1, "pipeline_parallel_size": 1, "data_parallel_size": 2}
    assert "DP=2" in c.recommendation and "topology_apply" in c.recommendation
    dp = c.ranking[0]
    assert dp.largest_class == 288
    assert dp.tok_s_at_class == 8000
    assert dp.prediction_error_pct == pytest.approx(100 * (320 - 288) / 288, abs=0.1)


def test_a_tie_on_class_size_is_broken_by_throughput_at_the_class(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    runs["runs"][0]["report"] = _probe_report(
        tmp_path / "dp2/report.json",
        [(48, 36, 215, 4100, True), (96, 70, 205, 6000, True), (192, 200, 201, 11000, True), (288, 700, 100, 1, False)],
    )
    c = report.build(runs)
    # Both hold 192 students; TP=2 gives 7,000 tok/s at the class of 96 against DP=2's 6,000.
    assert [r.name for r in c.ranking][:2] == ["TP=2", "DP=2"]
    assert "tied with DP=2" in c.recommendation
    assert "inventory's layout already" in c.recommendation


def test_a_layout_that_did_not_start_keeps_its_reason(tmp_path: Path) -> None:
    c = report.build(_runs(tmp_path))
    pp = c.ranking[-1]
    assert not pp.started and "pipeline" in pp.error
    assert "did not start" in report.markdown(c)


def test_no_passing_layout_gives_no_winner(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    for run, name in ((runs["runs"][0], "a"), (runs["runs"][2], "b")):
        run["report"] = _probe_report(tmp_path / f"{name}/report.json", [(48, 900, 10, 100, False)])
    c = report.build(runs)
    assert c.winner is None
    assert "No layout met the SLO" in c.recommendation


def test_the_lab_says_why_there_is_no_estimate(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    runs["runs"][0]["preflight"] = _preflight(tmp_path / "lab/preflight.json", None, profile="cpu_lab")
    c = report.build(runs)
    dp = next(r for r in c.ranking if r.name == "DP=2")
    assert dp.predicted_class is None and "cpu_lab" in dp.predicted_note
    assert dp.prediction_error_pct is None


def test_the_script_writes_markdown_html_and_json(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.json"
    runs_file.write_text(json.dumps(_runs(tmp_path)))
    out = tmp_path / "out"
    assert report.main([str(runs_file), "--out", str(out)]) == 0
    md = (out / "topology.md").read_text()
    page = (out / "topology.html").read_text()
    data = json.loads((out / "topology.json").read_text())
    assert "NVIDIA H200" in md and "580.159.04" in md and "0.26.0" in md
    assert "48 to 288 students" in md
    assert page.count("<svg") == 3 and "<script" not in page
    for name in ("DP=2", "TP=2"):
        assert name in page
    assert data["winner"]["name"] == "DP=2"
    assert data["ranking"][0]["prediction_error_pct"] is not None


def test_an_unreadable_runs_file_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.main([str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cpu_figures_say_so(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    for run in runs["runs"]:
        if run.get("report"):
            data = json.loads(Path(run["report"]).read_text())
            data["gpu"] = {"source": "absent", "gpus": []}
            Path(run["report"]).write_text(json.dumps(data))
    assert "say nothing about GPUs" in report.markdown(report.build(runs))
