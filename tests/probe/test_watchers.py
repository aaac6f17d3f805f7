"""GPU sampler, /metrics parsing, fd limit, prompts and config validation."""

import asyncio
import json
import os
import resource
import stat
from pathlib import Path

import pytest
from classroom_probe.config import Config
from classroom_probe.errors import BadInput
from classroom_probe.fdlimit import ensure_fd_limit
from classroom_probe.gpu import GpuSampler, parse_smi_csv
from classroom_probe.prompts import load_prompts
from classroom_probe.report import cross_check
from classroom_probe.runner import run
from classroom_probe.server_metrics import parse_prometheus
from classroom_probe.thresholds import PROFILES
from loopback import State

VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 7.0
vllm:generation_tokens_total{engine="0",model_name="m"} 1.2345e+04
vllm:generation_tokens_created{engine="0",model_name="m"} 1.7e+09
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5 1700000000000
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
"""


def test_parse_prometheus_sums_label_sets() -> None:
    v = parse_prometheus(VLLM_METRICS)
    assert v == {"vllm:num_requests_running": 5.0, "vllm:num_requests_waiting": 7.0,
                 "vllm:generation_tokens_total": 12345.0, "vllm:kv_cache_usage_perc": 0.5}


def test_cross_check() -> None:
    first = {"vllm:generation_tokens_total": 100.0}
    assert cross_check(first, {"vllm:generation_tokens_total": 400.0}, 300)["match"] is True
    bad = cross_check(first, {"vllm:generation_tokens_total": 400.0}, 200)
    assert bad["match"] is False and bad["difference"] == -100
    assert cross_check(None, None, 5)["available"] is False


def test_parse_smi_without_and_with_timestamp() -> None:
    plain = parse_smi_csv("0, 37, 15309, 81559\n1, [N/A], 4, 81559\n")
    assert [(s.index, s.util_pct, s.mem_used_mib) for s in plain] == [(0, 37.0, 15309.0), (1, None, 4.0)]
    stamped = parse_smi_csv("2026/11/23 05:07:37.585, 0, 100, 15309\n")
    assert [(s.index, s.util_pct) for s in stamped] == [(0, 100.0)]


def fake_smi(tmp_path: Path, lines: str, inventory: str = r"0, NVIDIA H200, 143771, 570.86.15\n") -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncase \"$*\" in *name*) printf '{inventory}';; *) printf '{lines}';; esac\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_gpu_sampler_smi_and_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi_dir = fake_smi(tmp_path, r"0, 90, 1000, 80000\n1, 30, 900, 80000\n")
    monkeypatch.setenv("PATH", f"{smi_dir}:{os.environ['PATH']}")
    sampler = GpuSampler("smi")
    asyncio.run(sampler.open())
    asyncio.run(sampler.sample_once())
    assert sampler.series.source == "smi"
    assert sampler.series.means() == {0: 90.0, 1: 30.0}
    assert [(g.index, g.name, g.memory_total_mib) for g in sampler.series.gpus] == [(0, "NVIDIA H200", 143771.0)]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    absent = GpuSampler("auto")
    asyncio.run(absent.open())
    assert absent.series.source == "absent" and "nvidia-smi not on PATH" in absent.series.reason


def test_run_with_imbalanced_gpus_fails_the_balance_check(loopback: tuple[str, State], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    smi_dir = fake_smi(tmp_path, r"0, 100, 973, 143771\n1, 0, 4, 143771\n",
                       r"0, NVIDIA H200, 143771, 570.86.15\n1, NVIDIA H200, 143771, 570.86.15\n")
    monkeypatch.setenv("PATH", f"{smi_dir}:{os.environ['PATH']}")
    base, _ = loopback
    config = Config(base_url=base, model="ok_slow", max_tokens=8, mode="classroom", students=2, duration=2.2,
                    warmup=0.0, think_min=0.0, think_max=0.1, gpu="smi", metrics_url="off",
                    thresholds=PROFILES["classroom"].__class__(gpu_util_mean_min_pct=10, gpu_util_balance_max_ratio=2),
                    report_dir=tmp_path / "r")
    result = run(config)
    checks = {c.name: c for c in result.verdict.checks}
    assert checks["gpu_util_balance_max_ratio"].passed is False
    assert checks["gpu_util_mean_min_pct"].passed is False
    assert result.verdict.status == "fail"
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [g["util_mean_pct_window"] for g in report["gpu"]["gpus"]] == [100.0, 0.0]
    assert [g["name"] for g in report["gpu"]["gpus"]] == ["NVIDIA H200", "NVIDIA H200"]
    assert [g["memory_total_mib"] for g in report["gpu"]["gpus"]] == [143771.0, 143771.0]
    assert report["gpu"]["driver_version"] == "570.86.15"
    page = (tmp_path / "r" / "report.html").read_text()
    assert "GPU utilisation" in page and "GPU memory used" in page
    assert "2 x NVIDIA H200 (140 GiB), driver 570.86.15" in page


def test_fd_limit_raised_or_clear_error() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY:
            with pytest.raises(BadInput) as err:
                ensure_fd_limit(hard + 10, "--students")
            assert err.value.field == "--students" and "hard limit" in err.value.message
        want = min(soft + 100, hard) - 64 if hard != resource.RLIM_INFINITY else soft + 100
        assert ensure_fd_limit(want, "--students") >= want
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_prompts_file(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hi"}\n\n{"messages": [{"role": "user", "content": "yo"}], "max_tokens": 5}\n')
    p = load_prompts(f)
    assert p[0].text == "hi" and p[1].messages == ({"role": "user", "content": "yo"},) and p[1].max_tokens == 5
    for bad in ('{"prompt": ""}', '{"prompt": "a", "extra": 1}', "[1]", "{", '{"prompt": "a", "max_tokens": 0}'):
        f.write_text(bad + "\n")
        with pytest.raises(BadInput) as err:
            load_prompts(f)
        assert err.value.field == "--prompts" and "line 1" in err.value.message


@pytest.mark.parametrize(("change", "field"), [
    ({"base_url": "127.0.0.1:8000"}, "--base-url"),
    ({"max_tokens": 0}, "--max-tokens"),
    ({"students": 0}, "--students"),
    ({"duration": float("nan")}, "--duration"),
    ({"mode": "ramp", "ramp_start": 8, "ramp_max": 4}, "--ramp-max"),
    ({"mode": "rate", "rate": -1.0}, "--rate"),
    ({"mode": "batch", "requests": 10, "concurrency": 0}, "--concurrency"),
    ({"headers": {"X-A": "b\r\nInjected: 1"}}, "--header"),
    ({"api": "grpc"}, "--api"),
])
def test_config_validation_names_the_field(change: dict[str, object], field: str) -> None:
    options: dict[str, object] = {"base_url": "http://127.0.0.1:8000", "model": "m", "max_tokens": 4}
    options.update(change)
    with pytest.raises(BadInput) as err:
        Config(**options).validate()  # type: ignore[arg-type]
    assert err.value.field == field
