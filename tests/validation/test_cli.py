import json
import tarfile

import pytest
from classroom_validation.cli import build_parser, main, status_lines
from classroom_validation.pack import pack
from classroom_validation.results import RunResults, StepResult


def _results(tmp_path):
    folder = tmp_path / "results"
    run = RunResults(folder)
    run.record(StepResult("host", "ok", "t", 1.0, "2 GPUs"))
    run.record(StepResult("serve_tp2", "failed", "t", 30.5, "vLLM exited with code 1"))
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


def test_a_step_recorded_again_replaces_the_earlier_result(tmp_path):
    folder, run = _results(tmp_path)
    run.record(StepResult("serve_tp2", "ok", "t", 90.0, "healthy"))
    assert [(s.name, s.status) for s in RunResults.load(folder).steps] == [("host", "ok"), ("serve_tp2", "ok")]


def test_pack_keeps_everything_and_trims_logs_only_when_asked(tmp_path):
    folder, _ = _results(tmp_path)
    (folder / "vllm-tp2.log").write_text("head\n" + "x" * 3_000_000 + "\ntail\n")
    (folder / "probe" / "c24").mkdir(parents=True)
    (folder / "probe" / "c24" / "report.json").write_text(json.dumps({"ok": True}))
    whole = pack(folder, tmp_path / "whole.tar.gz")
    trimmed = pack(folder, tmp_path / "trimmed.tar.gz", log_keep=512 * 1024)
    with tarfile.open(whole) as tar:
        assert "results/probe/c24/report.json" in tar.getnames()
        assert len(tar.extractfile("results/vllm-tp2.log").read()) > 3_000_000
    with tarfile.open(trimmed) as tar:
        log = tar.extractfile("results/vllm-tp2.log").read()
        assert "results/results.json" in tar.getnames()
    assert log.startswith(b"head") and log.endswith(b"tail\n")
    assert b"bytes cut when the results were packed" in log
    assert len(log) < 1_100_000


@pytest.mark.parametrize("argv", [
    ["kill", "--root", "/r", "--name", "tp2", "--url", "u", "--model", "m", "--students", "0", "--after", "1",
     "--duration", "1", "--max-tokens", "1"],
    ["serve", "--root", "/r", "--name", "tp2", "--step", "s", "--url", "u", "--timeout", "soon"],
    ["balance", "--root", "/r", "--seconds", "-5"],
    ["bundle", "build", "--spec", "s.toml"],
])
def test_bad_arguments_are_refused_by_name(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_step_before_begin_says_what_to_do(tmp_path, capsys):
    assert main(["host", "--root", str(tmp_path)]) == 2
    assert "begin" in capsys.readouterr().err


def test_begin_then_host_records_the_replayed_gpus(tmp_path, smi_on_path, capsys):
    assert main(["begin", "--root", str(tmp_path), "--settings-json", '{"class_sizes": [24]}']) == 0
    assert main(["host", "--root", str(tmp_path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0] == {"stopped_engines": []}
    assert printed[1]["step"] == "host" and printed[1]["status"] == "ok" and printed[1]["detail"] == "2 GPUs"
    run = RunResults.load(tmp_path / "results")
    assert run.settings == {"class_sizes": [24]}
    host = run.steps[0].data
    assert host["gpus"][0].startswith("0, NVIDIA H200")
    assert host["compute_apps_before"] == []


def test_log_commands_print_json(tmp_path, capsys):
    log = tmp_path / "vllm.log"
    log.write_text("INFO 11-23 07:14:40 [a.py:1] hi\nGPU KV cache size: 1,806,402 tokens\n"
                   "Maximum concurrency for 8,192 tokens per request: 220.51x\n")
    assert main(["kvlog", str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["gpu_kv_cache_tokens"] == 1806402
    assert main(["startup", str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["clock"] == "first log line"


def test_begin_empties_only_folders_the_kit_made(tmp_path, capsys):
    root = tmp_path / "v"
    (root / "run").mkdir(parents=True)
    (root / "run" / "someone-elses.txt").write_text("keep")
    assert main(["begin", "--root", str(root)]) == 2
    assert "is not the validation's" in capsys.readouterr().err
    assert (root / "run" / "someone-elses.txt").read_text() == "keep"
    (root / "run" / "someone-elses.txt").unlink()
    assert main(["begin", "--root", str(root)]) == 0
    (root / "results" / "old.txt").write_text("from the last run")
    assert main(["begin", "--root", str(root)]) == 0
    assert not (root / "results" / "old.txt").exists()
    assert main(["begin", "--root", "/tmp"]) == 2
    assert "too close to /" in capsys.readouterr().err
