import json
import tarfile

import pytest
from hwval.__main__ import build_parser, main, status_lines
from hwval.bundle import bundle
from hwval.results import RunResults, StepResult


def _results(tmp_path):
    folder = tmp_path / "results"
    run = RunResults(folder)
    run.add(StepResult("host", "ok", "t", 1.0, "2 GPUs"))
    run.add(StepResult("serve_tp2", "failed", "t", 30.5, "vLLM exited with code 1"))
    return folder, run


def test_status_lists_each_step_and_whether_the_run_finished(tmp_path):
    folder, run = _results(tmp_path)
    lines = status_lines(folder)
    assert lines[0].split()[:2] == ["host", "ok"]
    assert "vLLM exited with code 1" in lines[1]
    assert lines[-1].startswith("running")
    run.finish()
    assert status_lines(folder)[-1] == "finished"
    assert (folder / "DONE").is_file()


def test_bundle_trims_large_logs_and_keeps_everything_else(tmp_path):
    folder, _ = _results(tmp_path)
    (folder / "vllm-tp2.log").write_text("head\n" + "x" * 3_000_000 + "\ntail\n")
    (folder / "probe" / "c24").mkdir(parents=True)
    (folder / "probe" / "c24" / "report.json").write_text(json.dumps({"ok": True}))
    out = bundle(folder, tmp_path / "out" / "hw-results.tar.gz")
    with tarfile.open(out) as tar:
        names = tar.getnames()
        log = tar.extractfile("results/vllm-tp2.log").read()
    assert "results/results.json" in names
    assert "results/probe/c24/report.json" in names
    assert log.startswith(b"head") and log.endswith(b"tail\n")
    assert b"cut by hwval bundle" in log
    assert len(log) < 1_100_000


def test_steps_are_checked_and_dry_run_prints_the_settings(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "--root", "r", "--repo", ".", "--steps", "host,warp_drive"])
    args = build_parser().parse_args(["validate", "--root", str(tmp_path), "--repo", ".", "--steps", "kill,host"])
    assert args.steps == ["kill", "host"]
    assert main(["validate", "--root", str(tmp_path), "--repo", ".", "--dry-run", "--batch-requests", "5000"]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert settings["batch_requests"] == 5000
    assert settings["steps"][0] == "host"
    assert settings["tp1_enforce_eager"] is True
    assert not (tmp_path / "results").exists()


def test_kvlog_command_prints_the_parse(tmp_path, capsys):
    log = tmp_path / "vllm.log"
    log.write_text("GPU KV cache size: 1,806,402 tokens\nMaximum concurrency for 8,192 tokens per request: 220.51x\n")
    assert main(["kvlog", str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["gpu_kv_cache_tokens"] == 1806402
