import socket
import subprocess
import sys
import time

from hwval import engine as eng


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_code_is_none_when_nothing_listens():
    assert eng.health_code(f"http://127.0.0.1:{_free_port()}", timeout=0.5) is None


def test_workers_are_found_in_the_engines_session_only_and_the_session_is_stopped_whole(tmp_path):
    run_sh = tmp_path / "run.sh"
    # A stand-in for run.sh: a leader and a child titled like a vLLM worker, in one new session.
    run_sh.write_text(
        f"{sys.executable} -c 'import time; time.sleep(60)' VLLM::Worker_TP1-hwval-test &\n"
        "exec sleep 60\n"
    )
    # The same title outside the engine's session (another vLLM on the host) must never be picked.
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "VLLM::Worker_TP1-hwval-test"])
    engine = eng.start(run_sh, tmp_path / "engine.log", {"PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 10
        found = []
        while time.monotonic() < deadline and not found:
            found = eng.engine_workers(engine)
            time.sleep(0.1)
        assert len(found) == 1
        assert found[0][0] != outsider.pid
        members = eng.session_members(engine.pgid)
        assert {pid for pid, _ in members} >= {engine.proc.pid, found[0][0]}
        code = eng.stop(engine, grace=5)
        assert code is not None
        assert eng.session_members(engine.pgid) == []
        assert eng.engine_workers(engine) == []
        assert outsider.poll() is None  # stopping the engine left the outsider alone
    finally:
        eng.stop(engine, grace=1)
        outsider.kill()
        outsider.wait()


def test_wait_healthy_reports_an_engine_that_exits(tmp_path):
    run_sh = tmp_path / "run.sh"
    run_sh.write_text("echo boom; exit 3\n")
    engine = eng.start(run_sh, tmp_path / "engine.log", {"PATH": "/usr/bin:/bin"})
    try:
        eng.wait_healthy(engine, f"http://127.0.0.1:{_free_port()}", timeout=20, poll=0.2)
    except RuntimeError as exc:
        assert "exited with code 3" in str(exc)
    else:
        raise AssertionError("wait_healthy returned for a dead engine")
    assert (tmp_path / "engine.log").read_text().strip() == "boom"
