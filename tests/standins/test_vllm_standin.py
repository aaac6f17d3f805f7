"""The vLLM stand-in (tests/standins/vllm) on loopback: vLLM's open routes, the key on the OpenAI routes, and a
/metrics page with the recorded engine's families whose values move with the completions it serves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.standins.standin_helpers import free_port, request

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "standins" / "vllm" / "vllm_standin.py"
FAKE_DIR = ROOT / "molecule" / "concurrency_probe" / "files"
RECORDED = ROOT / "tests" / "fixtures" / "vllm-metrics" / "0.32.0.txt"
KEY = "standin-test-key"
MODEL = "classroom-tiny"


def families(text: str) -> dict[str, tuple[str, set[tuple[str, ...]]]]:
    """Family name -> (type, label-name sets without le)."""
    return {f.name: (f.type, {tuple(sorted(k for k in s.labels if k != "le")) for s in f.samples})
            for f in text_string_to_metric_families(text)}


def value(text: str, sample: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


@pytest.fixture
def url() -> Iterator[str]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONPATH": str(FAKE_DIR), "VLLM_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--port", str(port), "--version", "0.32.0",
                             "--metrics-page", str(RECORDED), "--model", MODEL, "--max-num-seqs", "4"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                request(base + "/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no output") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.kill()
        proc.wait(5)


def complete(base: str, max_tokens: int, key: str = KEY) -> tuple[int, bytes]:
    body = {"model": MODEL, "prompt": "hello", "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    req = urllib.request.Request(
        base + "/v1/completions", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_vllms_open_routes_and_the_key(url: str) -> None:
    assert request(url + "/health")[::2] == (200, b"")
    assert json.loads(request(url + "/version")[2]) == {"version": "0.32.0"}
    assert request(url + "/metrics")[0] == 200
    assert request(url + "/v1/models")[0] == 401
    assert complete(url, 4, key="wrong")[0] == 401


def test_the_page_has_the_recorded_families_labels_and_buckets(url: str) -> None:
    page = request(url + "/metrics")[2].decode()
    assert families(page) == families(RECORDED.read_text())
    recorded_buckets = [(line.split("{")[0], re.search(r'le="([^"]*)"', line)[1])  # type: ignore[index]
                        for line in RECORDED.read_text().splitlines() if "_bucket{" in line]
    buckets = [(line.split("{")[0], re.search(r'le="([^"]*)"', line)[1])  # type: ignore[index]
               for line in page.splitlines() if "_bucket{" in line]
    assert buckets == recorded_buckets


def test_a_fresh_stand_in_counts_nothing_yet(url: str) -> None:
    page = request(url + "/metrics")[2].decode()
    assert value(page, "vllm:generation_tokens_total") == 0
    assert value(page, "vllm:time_to_first_token_seconds_count") == 0
    assert value(page, "vllm:engine_sleep_state", sleep_state="awake") == 1
    assert value(page, "vllm:cache_config_info") == 1
    assert abs(value(page, "process_start_time_seconds") - time.time()) < 60


def test_served_completions_move_the_counters_and_histograms(url: str) -> None:
    for _ in range(3):
        status, body = complete(url, 6)
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    page = request(url + "/metrics")[2].decode()
    assert value(page, "vllm:generation_tokens_total", model_name=MODEL) == 18
    assert value(page, "vllm:prompt_tokens_total") == 24
    assert value(page, "vllm:request_success_total", finished_reason="length") == 3
    assert value(page, "vllm:num_requests_running") == 0
    assert value(page, "vllm:kv_cache_usage_perc") == 0
    assert value(page, "vllm:time_to_first_token_seconds_count") == 3
    assert value(page, "vllm:inter_token_latency_seconds_count") == 15
    assert value(page, "vllm:e2e_request_latency_seconds_count") == 3
    # Its own timings: the fake server waits 20 ms before the first token.
    assert value(page, "vllm:time_to_first_token_seconds_sum") >= 3 * 0.02
    assert value(page, "vllm:e2e_request_latency_seconds_sum") > value(page, "vllm:time_to_first_token_seconds_sum")
    for name in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"):
        assert value(page, name + "_bucket", le="+Inf") == value(page, name + "_count")
