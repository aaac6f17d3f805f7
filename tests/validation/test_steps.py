"""The engine steps end to end against a stand-in for vLLM (tests/validation/fake_vllm.py): first start
with empty caches, restart with the cache kept, the kill test, the stop; and what each records."""

import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from classroom_validation import engine as eng
from classroom_validation import steps
from classroom_validation.expectations import verdict
from classroom_validation.results import RunResults

FAKE = Path(__file__).with_name("fake_vllm.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run(tmp_path, smi_on_path):
    """A begun run with a tp2 render folder laid out as vllm_server's render entry point writes it."""
    paths = steps.Paths(tmp_path / "root")
    steps.begin(paths, {"test": True})
    port = _free_port()
    render = paths.render / "tp2"
    render.mkdir(parents=True)
    state = paths.root / "state"
    (render / "environment").write_text(f"HOME={state}\nVLLM_CACHE_ROOT='{state}/cache'\nFAKE_VLLM_PORT={port}\n")
    (render / "run.sh").write_text('set -eu\nhere="$(cd "$(dirname "$0")" && pwd)"\nset -a\n. "$here/environment"\n'
                                   f"set +a\nexec {sys.executable} {FAKE} \"$@\"\n")
    yield paths, f"http://127.0.0.1:{port}"
    steps.stop_all(paths)


def _serve(paths, url, step, cold):
    return steps.run_step(paths, step, lambda: steps.serve(paths, steps.Serve("tp2", step, url, 30, cold)))


def test_first_start_compiles_and_the_restart_loads_the_kept_cache(run):
    paths, url = run
    first = _serve(paths, url, "serve_tp2", cold=True)
    assert first.status == "ok", first.detail
    startup = first.data["startup"]
    assert startup["clock"] == "launch" and startup["compile_cache"] == "miss"
    assert [p["key"] for p in startup["phases"]][-2:] == ["api_up", "healthy"]
    assert first.data["cache"]["mode"] == "cold"
    assert first.data["kv_log"]["gpu_kv_cache_tokens"] == 1000
    assert (paths.results / "vllm-tp2.log").read_text().startswith("[+")
    assert Path(first.data["tmpdir"]).is_dir()  # a fresh /tmp per start, as the unit's PrivateTmp

    again = _serve(paths, url, "restart_tp2", cold=False)
    assert again.status == "ok", again.detail
    assert again.data["stopped_before"] == {"exit_code": 0}  # the running engine was stopped first
    assert again.data["startup"]["compile_cache"] == "hit"
    assert (paths.results / "vllm-restart_tp2.log").is_file()
    expectation = next(e for e in verdict(paths.results)["expectations"] if "compile" in e["what"])
    assert expectation["met"] is True

    stopped = steps.run_step(paths, "stop_tp2", lambda: steps.stop_engine(paths, "tp2"))
    assert stopped.status == "ok" and stopped.data["exit_code"] == 0
    assert eng.running_engines(paths.state) == []


def test_a_port_that_already_answers_fails_the_start_without_starting(run):
    paths, url = run
    assert _serve(paths, url, "serve_tp2", cold=True).status == "ok"
    eng_state = eng.read_state(paths.state, "tp2")
    # Another start under a new name while the first engine holds the port: refused, the first one untouched.
    (paths.render / "other").mkdir()
    for name in ("environment", "run.sh"):
        (paths.render / "other" / name).write_text((paths.render / "tp2" / name).read_text())
    other = steps.run_step(paths, "serve_other",
                           lambda: steps.serve(paths, steps.Serve("other", "serve_other", url, 10, False)))
    assert other.status == "failed" and "already answers" in other.detail
    assert eng.read_state(paths.state, "tp2") == eng_state


def test_cold_caches_outside_the_validations_folder_are_left_alone(run, tmp_path):
    paths, url = run
    elsewhere = tmp_path / "someone-elses-cache"
    (elsewhere / "keep").mkdir(parents=True)
    env = (paths.render / "tp2" / "environment").read_text()
    (paths.render / "tp2" / "environment").write_text(env.replace(f"'{paths.root}/state/cache'", f"'{elsewhere}'"))
    first = _serve(paths, url, "serve_tp2", cold=True)
    assert first.status == "ok", first.detail
    assert (elsewhere / "keep").is_dir()
    assert first.data["cache"]["not_emptied"] == [str(elsewhere)]


DUMMY_PROBE = """
import json, pathlib, sys, time
time.sleep(1.5)
report = pathlib.Path(sys.argv[1])
report.mkdir(parents=True, exist_ok=True)
(report / "report.json").write_text(json.dumps({
    "failures": {"total": 3, "by_kind": {"error_after_tokens": 2, "connect_refused": 1}},
    "verdict": {"status": "fail", "checks": []}}))
print(json.dumps({"status": "fail", "checks": []}))
sys.exit(1)
"""


def test_the_kill_test_records_failure_kinds_health_exit_code_and_leftovers(run, monkeypatch):
    paths, url = run
    assert _serve(paths, url, "serve_tp2", cold=True).status == "ok"
    # The probe's own CLI is exercised against vLLM elsewhere; here a stand-in load writes a report.
    monkeypatch.setattr(steps, "probe_command",
                        lambda python, load, base_url, model, report_dir: [python, "-c", DUMMY_PROBE, str(report_dir)])
    result = steps.run_step(paths, "kill", lambda: steps.kill(paths, steps.Kill("tp2", url, "m", 4, 0.5, 5, 16)))
    assert result.status == "ok", result.detail
    d = result.data
    assert "VLLM::Worker_TP1" in d["killed"]["cmdline"]
    assert d["api_exit_code"] == 0  # vLLM's API exits 0 when its engine dies
    assert 0 <= d["api_exit_after_s"] < 10
    timeline = d["health_timeline"]
    assert any(s["health"] == 200 for s in timeline) and timeline[-1]["api_running"] is False, timeline
    assert d["left_in_session_after_exit"] == []
    assert d["failures_by_kind"] == {"error_after_tokens": 2, "connect_refused": 1}
    assert json.loads((paths.results / "kill.json").read_text())["api_exit_code"] == 0
    assert not eng.running_engines(paths.state)
    kill = next(e for e in verdict(paths.results)["expectations"] if e["what"].startswith("Engine kill"))
    assert kill["met"] is True


def test_steps_that_need_an_engine_are_skipped_without_one(run):
    paths, url = run
    kill = steps.run_step(paths, "kill", lambda: steps.kill(paths, steps.Kill("tp2", url, "m", 4, 0.5, 5, 16)))
    gate = steps.run_step(paths, "probe_c24", lambda: steps.record_gate(paths, "c24", url, "tp2"))
    kv = steps.run_step(paths, "kv_compare", lambda: steps.kv_compare(paths, "h", "serve_tp2", "vllm-tp2.log"))
    assert [kill.status, gate.status, kv.status] == ["skipped"] * 3
    assert "no healthy engine tp2" in gate.detail
    assert [s.name for s in RunResults.load(paths.results).steps] == ["kill", "probe_c24", "kv_compare"]


def test_a_gate_run_of_the_role_is_recorded_with_its_own_duration(run):
    paths, url = run
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (paths.gate / "c24" / stamp).mkdir(parents=True)
    (paths.gate / "c24" / stamp / "report.json").write_text(json.dumps({
        "started_at": "2026-11-30T10:31:03+00:00", "finished_at": "2026-11-30T10:32:14.5+00:00",
        "aggregates": {"requests_ok": 5}, "verdict": {"status": "pass", "checks": []}}))
    result = steps.run_step(paths, "probe_c24", lambda: steps.record_gate(paths, "c24", url, "tp2"))
    assert (result.status, result.detail, result.data["run_seconds"]) == ("ok", "gate pass", 71.5)
    assert (paths.results / "probe" / "c24" / "report.json").is_file()
