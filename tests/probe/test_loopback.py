"""The probe against the scripted loopback server: every failure kind lands in its kind."""

import json
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from classroom_probe.config import Config
from classroom_probe.errors import BadInput
from classroom_probe.records import RequestRecord
from classroom_probe.runner import RunResult, run
from classroom_probe.thresholds import PROFILES
from loopback import FAILING_SSE, State

ROOT = Path(__file__).resolve().parents[2]
# The shared test machine can starve the probe; health has its own tests, so these runs leave it out.
LAB = replace(PROFILES["lab"], probe_loop_lag_p99_ms_max=None)


def probe(base: str, model: str, api: str = "chat", requests: int = 3,
          **kw: object) -> tuple[RunResult, list[RequestRecord]]:
    seen: list[RequestRecord] = []
    options: dict[str, object] = {
        "base_url": base, "model": model, "api": api, "max_tokens": 8, "mode": "batch", "requests": requests,
        "concurrency": 2, "warmup": 0.0, "gpu": "off", "metrics_url": "off", "profile": "lab",
        "thresholds": LAB, "read_timeout": 1.0, "connect_timeout": 1.0,
    }
    options.update(kw)
    result = run(Config(**options), on_record=seen.append)  # type: ignore[arg-type]
    return result, seen


@pytest.mark.parametrize("model", sorted(FAILING_SSE))
def test_each_failure_kind_lands_in_its_kind(loopback: tuple[str, State], model: str) -> None:
    base, _ = loopback
    result, records = probe(base, model, requests=2)
    kind = FAILING_SSE[model]
    assert [r.failure_key for r in records] == [kind, kind]
    assert result.report["failures"]["by_kind"] == {kind: 2}
    assert result.verdict.status == "fail"
    assert result.aggregator.ok == 0


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("model", ["ok", "ok_crlf", "ok_cr", "ok_big"])
def test_sse_variants_succeed_with_server_token_counts(loopback: tuple[str, State], model: str, api: str) -> None:
    base, _ = loopback
    result, records = probe(base, model, api=api)
    assert all(r.ok for r in records), [r.error for r in records]
    assert [r.output_tokens for r in records] == [8, 8, 8]
    assert not any(r.tokens_estimated for r in records)
    assert all(r.chunks == 8 for r in records)
    assert all(len(r.gaps_ns) == 7 for r in records)
    assert result.verdict.status == "pass"


def test_without_usage_tokens_are_chunks_marked_estimated(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    result, records = probe(base, "ok_nousage")
    assert all(r.ok and r.tokens_estimated and r.output_tokens == 8 for r in records)
    assert result.report["aggregates"]["output_tokens_estimated"] is True
    assert result.report["aggregates"]["latency_ms"]["itl_per_token"]["count"] == 0


def test_multi_token_chunks_give_per_token_itl(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    result, records = probe(base, "ok_multi", requests=1)
    rec = records[0]
    assert rec.ok and rec.output_tokens == 8 and rec.chunks == 4
    assert rec.gap_tokens == [2, 2, 2]
    lat = result.report["aggregates"]["latency_ms"]
    assert lat["itl"]["count"] == 3
    assert lat["itl_per_token"]["count"] == 6


@pytest.mark.parametrize(("model", "kind"), [
    ("llama-error", "error_before_first_token"),
    ("llama-nodone", "closed_without_done"),
    ("llama-malformed", "malformed_event"),
])
def test_ollama_failures(loopback: tuple[str, State], model: str, kind: str) -> None:
    base, _ = loopback
    _, records = probe(base, model, api="ollama", requests=1)
    assert records[0].failure_key == kind


@pytest.mark.parametrize(("model", "estimated"), [("llama-ok", False), ("llama-noeval", True), ("llama-tail", False)])
def test_ollama_success(loopback: tuple[str, State], model: str, estimated: bool) -> None:
    base, _ = loopback
    _, records = probe(base, model.removesuffix(""), api="ollama", requests=1)
    rec = records[0]
    assert rec.ok, rec.error
    assert rec.output_tokens == 8 and rec.tokens_estimated is estimated


def test_connect_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(BadInput) as err:
        probe(f"http://127.0.0.1:{port}", "ok")
    assert err.value.field == "--base-url"
    assert time.monotonic() - start < 2


def test_connect_timeout_within_the_limit() -> None:
    # A listener that never accepts, with its backlog filled: the kernel drops further SYNs.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(BadInput) as err:
            probe(f"http://127.0.0.1:{port}", "ok", connect_timeout=0.5)
        elapsed = time.monotonic() - start
        assert err.value.field == "--base-url"
        assert elapsed < 2.5
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_wrong_model_lists_available_names(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    with pytest.raises(BadInput) as err:
        probe(base, "no-such-model")
    assert err.value.field == "--model"
    assert "ok_crlf" in err.value.message


def test_headers_and_api_key_are_sent(loopback: tuple[str, State]) -> None:
    base, state = loopback
    before = len(state.headers_seen)
    probe(base, "ok", requests=1, api_key="sekret", headers={"X-Tenant": "class-7b"})
    sent = state.headers_seen[before]
    assert sent["Authorization"] == "Bearer sekret"
    assert sent["X-Tenant"] == "class-7b"


def test_request_id_header(loopback: tuple[str, State]) -> None:
    base, state = loopback
    before = len(state.headers_seen)
    _, records = probe(base, "ok", requests=3, request_id_header="X-Probe-Request")
    sent = sorted(h["X-Probe-Request"] for h in state.headers_seen[before:])
    assert sent == sorted(str(r.index) for r in records) == ["0", "1", "2"]


def test_cross_check_against_metrics(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    result, _ = probe(base, "ok", requests=5, metrics_url="auto")
    cc = result.report["server"]["cross_check"]
    assert cc["available"] and cc["match"] and cc["probe_tokens"] == 40 == cc["server_tokens"]


def test_server_dying_mid_run_counts_failures_and_writes_report(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    result, records = probe(base, "error_after", requests=4, report_dir=tmp_path)
    assert all(r.failure_key == "error_after_tokens" and r.output_tokens == 4 for r in records)
    assert result.exit_code == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["status"] == "fail"
    assert report["failures"]["by_kind"] == {"error_after_tokens": 4}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "probe" / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "classroom_probe", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_cli_classroom_quiet_reports_and_compare(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    out_a = tmp_path / "a"
    no_lag = tmp_path / "t.json"
    no_lag.write_text('{"probe_loop_lag_p99_ms_max": null}')
    proc = _cli("run", "--thresholds", str(no_lag), "--base-url", base, "--model", "ok_slow", "--max-tokens", "6",
                "--mode", "classroom",
                "--students", "3", "--duration", "2", "--warmup", "0.5", "--think-min", "0", "--think-max", "0.2",
                "--profile", "lab", "--gpu", "off", "--report-dir", str(out_a), "--records", "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["status"] == "pass" and summary["report_dir"] == str(out_a)
    assert {c["name"] for c in summary["checks"]} >= {"ttft_p95_ms_max", "failures_max", "min_requests"}
    report = json.loads((out_a / "report.json").read_text())
    assert report["schema_version"] == 2
    assert report["aggregates"]["requests_ok"] > 3
    assert report["server"]["available"] is True
    assert report["server"]["cross_check"]["match"] is True
    html = (out_a / "report.html").read_text()
    assert html.count("<svg") >= 5  # latency histograms, throughput, running/waiting, probe health
    assert not any(tag in html for tag in ("<script", "<link", "src=", "href="))  # opens with no network
    records = (out_a / "records.jsonl").read_text().splitlines()
    assert len(records) == report["failures"]["total"] + sum(1 for r in records if json.loads(r)["ok"])
    assert any(not json.loads(r)["measured"] for r in records)  # warm-up requests are recorded, not measured
    out_c = tmp_path / "cmp"
    proc = _cli("compare", str(out_a / "report.json"), str(out_a / "report.json"), "--out", str(out_c))
    assert proc.returncode == 0, proc.stderr
    assert "TTFT p95 (ms)" in (out_c / "compare.md").read_text()
    assert (out_c / "compare.html").read_text().count("<svg") >= 2


@pytest.mark.parametrize(("args", "field"), [
    (["--students", "0"], "--students"),
    (["--think-min", "3", "--think-max", "1"], "--think-max"),
    (["--header", "NoColon"], "--header"),
    (["--mode", "batch"], "--requests"),
    (["--mode", "rate"], "--rate"),
    (["--max-tokens", "x"], "--max-tokens"),
    (["--metrics-url", "ftp://x"], "--metrics-url"),
])
def test_cli_bad_input_names_the_field(args: list[str], field: str, tmp_path: Path) -> None:
    base = ["run", "--base-url", "http://127.0.0.1:9", "--model", "m", "--max-tokens", "4", "--report-dir",
            str(tmp_path)]
    proc = _cli(*base, *args)
    assert proc.returncode == 2
    assert field in proc.stderr


def test_cli_wrong_model_exit_2(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    proc = _cli("run", "--base-url", base, "--model", "nope", "--max-tokens", "4", "--report-dir", str(tmp_path),
                "--quiet")
    assert proc.returncode == 2
    assert "--model" in proc.stderr and "available: ok, ok_crlf" in proc.stderr


def test_cli_bad_thresholds_file(tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text('{"ttft_p95_ms_max": 300, "p95_ttft": 1}')
    proc = _cli("run", "--base-url", "http://127.0.0.1:9", "--model", "m", "--max-tokens", "4", "--report-dir",
                str(tmp_path), "--thresholds", str(t))
    assert proc.returncode == 2 and "thresholds.p95_ttft" in proc.stderr


def test_rate_mode_poisson(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    result, records = probe(base, "ok", mode="rate", rate=20.0, poisson=True, duration=1.0, requests=None)
    assert 5 <= len(records) <= 60
    assert all(r.student is None for r in records)
    assert result.report["load"]["dispatch_lag_ms"]["count"] == len(records)
    assert result.report["aggregates"]["student_output_tok_s"]["unit"] == "request"


def test_ramp_stops_at_first_failing_step(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    result, _ = probe(base, "ok_slow", mode="ramp", ramp_start=1, ramp_step=2, ramp_max=5, ramp_step_duration=0.6,
                      warmup=0.0, think_min=0.0, think_max=0.05, requests=None,
                      thresholds=PROFILES["lab"].__class__(ttft_p95_ms_max=5000, failures_max=0, min_requests=1))
    ramp = result.report["load"]["ramp"]
    assert [s["students"] for s in ramp["steps"]] == [1, 3, 5]
    assert ramp["largest_passing_students"] == 5
    assert result.verdict.status == "pass"


def test_batch_drain_deadline_cancels_and_counts(loopback: tuple[str, State]) -> None:
    base, _ = loopback
    _, records = probe(base, "stall_body", requests=2, read_timeout=30.0, batch_time_limit=0.2, drain_timeout=0.3)
    assert [r.failure_key for r in records] == ["drain_timeout", "drain_timeout"]


def test_cli_live_line_shows_phase_totals_and_time_left(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    proc = _cli("run", "--base-url", base, "--model", "ok_slow", "--max-tokens", "6", "--students", "2",
                "--duration", "1.5", "--warmup", "1", "--think-min", "0", "--think-max", "0.1", "--profile", "lab",
                "--gpu", "off", "--report-dir", str(tmp_path), "--thresholds", str(_no_lag(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert lines, proc.stderr
    assert any("warm-up" in ln for ln in lines) or any("measuring" in ln for ln in lines)
    assert all(" done, " in ln and " in flight " in ln and "tok/s" in ln for ln in lines)
    assert any(" left" in ln for ln in lines)
    assert proc.stdout.startswith("Verdict: PASS (exit 0)")
    assert "Reports: " in proc.stdout and (tmp_path / "checks.txt").read_text().startswith("Verdict: PASS")


def _no_lag(tmp_path: Path) -> Path:
    f = tmp_path / "no-lag.json"
    f.write_text('{"probe_loop_lag_p99_ms_max": null}')
    return f
