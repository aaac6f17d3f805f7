"""One configuration road: Config, the command line generated from it, the run file and its schema."""

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from classroom_probe.cli import CLI_FIELDS, build_parser, config_from_args
from classroom_probe.config import OPTIONS, Config, ProfileName
from classroom_probe.errors import BadInput
from classroom_probe.report import report_schema
from classroom_probe.schema import run_file_schema
from classroom_probe.thresholds import PROFILES

ROOT = Path(__file__).resolve().parents[2]
BASE = {"base_url": "http://127.0.0.1:8000", "model": "m", "max_tokens": 4}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "probe" / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "classroom_probe", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False, cwd=cwd)


def test_a_profile_name_brings_its_own_thresholds() -> None:
    # Config(profile="lab") used to keep the classroom thresholds under the lab name.
    for name in PROFILES:
        c = Config(**BASE, profile=name)  # type: ignore[arg-type]
        assert c.limits == PROFILES[name] and c.threshold_overrides == {}
    assert list(PROFILES) == list(ProfileName.__args__)  # type: ignore[attr-defined]


def test_limits_that_differ_from_the_profile_are_recorded_as_overrides() -> None:
    c = Config(**BASE, profile="lab", thresholds=replace(PROFILES["lab"], probe_loop_lag_p99_ms_max=None))  # type: ignore[arg-type]
    assert c.threshold_overrides == {"probe_loop_lag_p99_ms_max": None}
    c = Config(**BASE, profile="lab", thresholds=PROFILES["classroom"])  # type: ignore[arg-type]
    record = c.to_json()
    assert record["profile"] == "lab" and record["thresholds"] == PROFILES["classroom"].to_json()
    assert record["threshold_overrides"]["ttft_p95_ms_max"] == 500.0  # the name never hides other limits


def test_thresholds_file_applies_over_the_named_profile(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text('{"ttft_p95_ms_max": 900}')
    c = Config(**BASE, profile="ollama", thresholds_file=f)  # type: ignore[arg-type]
    c.validate()
    assert c.limits == replace(PROFILES["ollama"], ttft_p95_ms_max=900.0)
    assert c.threshold_overrides == {"ttft_p95_ms_max": 900.0}


def test_every_option_has_help_a_default_and_its_unit() -> None:
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]  # type: ignore[union-attr]
    by_dest = {a.dest: a for a in run._actions if a.dest in CLI_FIELDS}
    assert set(by_dest) == set(CLI_FIELDS)
    for name, action in by_dest.items():
        text = action.help or ""
        assert OPTIONS[name].help in text, name
        assert "default:" in text or "required" in text, name
        if OPTIONS[name].unit:
            assert f"unit: {OPTIONS[name].unit}" in text, name
    out = cli("run", "--help")
    assert out.returncode == 0 and "--students N" in out.stdout and "default: 24 students" in out.stdout


def test_run_file_and_command_line_give_the_same_config(tmp_path: Path) -> None:
    runfile = {**BASE, "report_dir": str(tmp_path / "r"), "mode": "rate", "rate": 3, "duration": 2,
               "headers": {"X-Tenant": "7b"}, "ignore_eos": True, "continuous_usage": False, "profile": "lab",
               "thresholds": {"ttft_p95_ms_max": 700}, "status_file": str(tmp_path / "s.json"), "workers": 1}
    f = tmp_path / "run.json"
    f.write_text(json.dumps(runfile))
    from_file = config_from_args(build_parser().parse_args(["run", "--config", str(f)]))
    argv = ["run", "--base-url", BASE["base_url"], "--model", "m", "--max-tokens", "4", "--report-dir",
            str(tmp_path / "r"), "--mode", "rate", "--rate", "3", "--duration", "2", "--header", "X-Tenant: 7b",
            "--ignore-eos", "--no-continuous-usage", "--profile", "lab", "--status-file", str(tmp_path / "s.json"),
            "--workers", "1"]
    t = tmp_path / "t.json"
    t.write_text('{"ttft_p95_ms_max": 700}')
    from_argv = config_from_args(build_parser().parse_args([*argv, "--thresholds", str(t)]))
    assert from_file.to_json() == from_argv.to_json()
    assert from_file.rate == 3.0 and isinstance(from_file.rate, float)
    # Options on the command line override the file's.
    over = config_from_args(build_parser().parse_args(["run", "--config", str(f), "--rate", "5", "--quiet"]))
    assert over.rate == 5.0 and over.quiet and not over.progress and over.model == "m"
    # What `validate` prints is a run file giving the same settings back.
    again = Config.from_mapping(from_file.to_runfile())
    again.validate()
    assert again.to_json() == from_file.to_json()


@pytest.mark.parametrize(("change", "field"), [
    ({"students": "24"}, "--students"),
    ({"students": 2.5}, "--students"),
    ({"students": True}, "--students"),
    ({"students": 0}, "--students"),
    ({"warmup": -1}, "--warmup"),
    ({"duration": 0}, "--duration"),
    ({"mode": "storm"}, "--mode"),
    ({"profile": "fast"}, "--profile"),
    ({"report_dir": 7}, "--report-dir"),
    ({"headers": ["X: y"]}, "--header"),
    ({"headers": {"X": 1}}, "--header"),
    ({"workers": 0}, "--workers"),
    ({"thresholds": {"ttft_p95_ms_max": "fast"}}, "thresholds.ttft_p95_ms_max"),
    ({"thresholds": {"p95": 1}}, "thresholds.p95"),
    ({"mode": "batch"}, "--requests"),
    ({"colour": "blue"}, "colour"),
])
def test_run_file_errors_name_the_setting(change: dict[str, object], field: str) -> None:
    with pytest.raises(BadInput) as err:
        Config.from_mapping({**BASE, **change}).validate()
    assert err.value.field == field
    # The published schema refuses the same file (the role can check types before it copies the file).
    assert not jsonschema.Draft202012Validator(run_file_schema()).is_valid({**BASE, "report_dir": "r", **change})


def test_missing_required_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        Config.from_mapping({"model": "m", "max_tokens": 4})
    assert err.value.field == "--base-url"
    f = tmp_path / "run.json"
    f.write_text(json.dumps(BASE))
    with pytest.raises(BadInput) as err:
        config_from_args(build_parser().parse_args(["run", "--config", str(f)]))
    assert err.value.field == "--report-dir"


def test_published_schemas_are_current() -> None:
    # probe/run-file.schema.json and probe/report.schema.json are `python -m classroom_probe schema ...`.
    assert json.loads((ROOT / "probe" / "run-file.schema.json").read_text()) == run_file_schema()
    assert json.loads((ROOT / "probe" / "report.schema.json").read_text()) == report_schema()
    jsonschema.Draft202012Validator.check_schema(run_file_schema())
    jsonschema.Draft202012Validator.check_schema(report_schema())
    sample = {**BASE, "report_dir": "out", "mode": "batch", "requests": 10, "thresholds": {"min_requests": 5}}
    jsonschema.validate(sample, run_file_schema())


def test_validate_prints_the_settings_and_reads_nothing_else(tmp_path: Path) -> None:
    f = tmp_path / "run.json"
    f.write_text(json.dumps({**BASE, "students": 3}))
    out = cli("validate", "--config", str(f))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["students"] == 3
    f.write_text(json.dumps({**BASE, "students": -3}))
    out = cli("validate", "--config", str(f))
    assert out.returncode == 2 and out.stderr.startswith("bad input: --students")


def _make_bad(kind: str, path: Path, limit_bytes: int) -> Path:
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with path.open("wb") as fh:
            fh.truncate(limit_bytes + 1)  # sparse: costs no disk
    elif kind == "not UTF-8":
        path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    elif kind == "unreadable":
        path.write_text("{}")
        path.chmod(0)
    return path


KINDS = ["missing", "directory", "fifo", "huge", "not UTF-8", "unreadable"]
FILES = [("--prompts", 64 << 20), ("--thresholds", 1 << 20), ("--api-key-file", 64 << 10), ("--config", 1 << 20)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("option", "limit"), FILES)
def test_every_file_read_gives_bad_input_naming_its_option(tmp_path: Path, option: str, limit: int,
                                                          kind: str) -> None:
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode (the FIFO and directory cases cover unreadable)")
    bad = _make_bad(kind, tmp_path / "input", limit)
    args = ["run", "--base-url", "http://127.0.0.1:9", "--model", "m", "--max-tokens", "4",
            "--report-dir", str(tmp_path / "r"), option, str(bad)]
    with pytest.raises(BadInput) as err:
        config_from_args(build_parser().parse_args(args))
    assert err.value.field == option, err.value
    assert str(bad) in err.value.message


@pytest.mark.parametrize("option", [o for o, _ in FILES])
def test_a_file_that_is_not_utf8_exits_2_without_a_traceback(tmp_path: Path, option: str) -> None:
    bad = _make_bad("not UTF-8", tmp_path / "input", 0)
    out = cli("run", "--base-url", "http://127.0.0.1:9", "--model", "m", "--max-tokens", "4", "--report-dir",
              str(tmp_path / "r"), option, str(bad))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith(f"bad input: {option}: ") and "not UTF-8" in out.stderr


def test_a_leading_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"prompt": "hello"}\n')
    t = tmp_path / "t.json"
    t.write_bytes(b'\xef\xbb\xbf{"min_requests": 2}')
    c = Config(**BASE, prompts_file=p, thresholds_file=t)  # type: ignore[arg-type]
    c.validate()
    assert c.prompts[0].text == "hello" and c.limits.min_requests == 2


def test_python_api_and_cli_namespace_still_build_configs() -> None:
    # The hardware kit builds its Config through these two (build_parser, config_from_args).
    ns = build_parser().parse_args(["run", "--base-url", "http://h:8000", "--model", "m", "--max-tokens", "8",
                                    "--report-dir", "/tmp/x", "--mode", "batch", "--requests", "50",
                                    "--concurrency", "4", "--duration", "150", "--gpu", "nvml", "--quiet"])
    assert isinstance(ns, argparse.Namespace)
    c = config_from_args(ns)
    assert (c.requests, c.batch_concurrency, c.batch_time_limit, c.gpu, c.quiet) == (50, 4, 150.0, "nvml", True)
    assert c.metrics_url == "auto" and c.profile == "classroom"


def test_readme_settings_table_and_check_ids_are_current() -> None:
    from classroom_probe.checks import CHECK_IDS  # noqa: PLC0415
    from classroom_probe.schema import settings_markdown  # noqa: PLC0415

    readme = (ROOT / "probe" / "README.md").read_text()
    table = readme.split("<!-- settings:start -->\n")[1].split("<!-- settings:end -->")[0]
    assert table == settings_markdown(), "regenerate: python -m classroom_probe schema settings"
    for check_id in CHECK_IDS:
        assert f"| `{check_id}` |" in readme, check_id
