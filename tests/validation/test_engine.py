import socket
import subprocess
import sys
import time

from classroom_validation import engine as eng


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_sh(tmp_path, body: str):
    run_sh = tmp_path / "run.sh"
    run_sh.write_text(body)
    return run_sh


def test_health_code_is_none_when_nothing_listens():
    assert eng.health_code(f"http://127.0.0.1:{_free_port()}", timeout=0.5) is None


def test_workers_are_found_in_the_engines_session_only_and_the_session_is_stopped_whole(tmp_path):
    # A stand-in for run.sh: a leader and a child titled like a vLLM worker, in one new session.
    run_sh = _run_sh(tmp_path, f"{sys.executable} -c 'import time; time.sleep(60)' VLLM::Worker_TP1-kit-test &\n"
                               "exec sleep 60\n")
    # The same title outside the engine's session (another vLLM on the host) must never be picked.
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "VLLM::Worker_TP1-kit-test"])
    state_dir = tmp_path / "run"
    try:
        state = eng.launch("tp2", run_sh, tmp_path / "engine.log", state_dir, env=eng.engine_env(None, False))
        assert state.running and state.pid is not None
        deadline = time.monotonic() + 10
        found = []
        while time.monotonic() < deadline and not found:
            found = eng.engine_workers(state)
            time.sleep(0.1)
        assert len(found) == 1
        assert found[0][0] != outsider.pid
        assert {pid for pid, _ in eng.session_members(state.pid)} >= {state.pid, found[0][0]}
        assert eng.running_engines(state_dir) == ["tp2"]
        final = eng.stop(state_dir, "tp2", grace=5)
        assert final is not None and final.exit_code is not None and not final.running
        assert eng.session_members(state.pid) == []
        assert eng.running_engines(state_dir) == []
        assert outsider.poll() is None  # stopping the engine left the outsider alone
    finally:
        eng.stop(state_dir, "tp2", grace=1)
        outsider.kill()
        outsider.wait()


def test_an_engine_that_exits_is_reported_with_its_code_and_a_stamped_log(tmp_path):
    run_sh = _run_sh(tmp_path, "echo boom; exit 3\n")
    state_dir = tmp_path / "run"
    eng.launch("tp2", run_sh, tmp_path / "engine.log", state_dir, env=eng.engine_env(None, False))
    try:
        eng.wait_healthy(state_dir, "tp2", f"http://127.0.0.1:{_free_port()}", timeout=20, poll=0.2)
    except RuntimeError as exc:
        assert "exited with code 3" in str(exc)
    else:
        raise AssertionError("wait_healthy returned for a dead engine")
    final = eng.wait_exit(state_dir, "tp2", 5)
    assert final is not None and final.exit_code == 3 and final.exited_mono is not None
    line = (tmp_path / "engine.log").read_text().strip()
    assert line.startswith("[+") and line.endswith("s] boom")


def test_the_engine_starts_from_the_units_minimal_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("SECRET_OF_THE_CALLER", "x")
    env = eng.engine_env(tmp_path, inherit=False)
    assert env["PATH"] == eng.UNIT_PATH
    assert env["TMPDIR"] == str(tmp_path)
    assert "SECRET_OF_THE_CALLER" not in env and "CUDA_VISIBLE_DEVICES" not in env
    inherited = eng.engine_env(None, inherit=True)
    assert inherited["SECRET_OF_THE_CALLER"] == "x" and "CUDA_VISIBLE_DEVICES" not in inherited


def test_the_rendered_environment_file_is_read_as_the_shell_reads_it(tmp_path):
    path = tmp_path / "environment"
    path.write_text("#\n# Ansible managed\n#\nHOME=/var/lib/vllm\nVLLM_CPU_OMP_THREADS_BIND='0|1'\n"
                    "EMPTY=''\nSPACED='a b'\n")
    assert eng.read_environment(path) == {"HOME": "/var/lib/vllm", "VLLM_CPU_OMP_THREADS_BIND": "0|1", "EMPTY": "",
                                          "SPACED": "a b"}
