"""The health wait stops at a crash, not at the timeout; the reaper finds the unit's cgroup."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import vllm_server_wait as wait_module
from vllm_server_wait import UnitState, wait

FILES = Path(__file__).resolve().parents[2] / "roles" / "vllm_server" / "files"


def load_file(name: str):
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def state(active="active", sub="running", restarts=0, pid=100, result="success", status=0):
    return UnitState(active, sub, restarts, pid, result, status)


class Scripted:
    """Unit states and /health answers per poll, and a clock that advances one delay per sleep."""

    def __init__(self, states, health=None):
        self.states, self.health, self.now, self.polls = list(states), health or [], 0.0, 0

    def show(self):
        return self.states[min(self.polls, len(self.states) - 1)]

    def healthy(self):
        answer = self.health[min(self.polls, len(self.health) - 1)] if self.health else False
        return answer

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.polls += 1


def run(script, timeout=900.0, delay=2.0):
    return wait(script.show, script.healthy, timeout=timeout, delay=delay, clock=script.clock, sleep=script.sleep)


def test_healthy_once_health_answers():
    out = run(Scripted([state()] * 5, health=[False, False, True]))
    assert (out.healthy, out.outcome, out.seconds) == (True, "healthy", 4.0)


def test_a_crash_into_auto_restart_ends_the_wait_at_once():
    out = run(Scripted([state(), state(), state(active="activating", sub="auto-restart", pid=0, status=1)]))
    assert (out.healthy, out.outcome) == (False, "crashed")
    assert out.seconds == 4.0
    assert "exit status 1" in out.reason


def test_a_rising_restart_counter_or_a_new_main_process_is_a_crash():
    assert run(Scripted([state(restarts=0), state(restarts=1, pid=200)])).outcome == "crashed"
    assert run(Scripted([state(pid=100), state(pid=100), state(pid=200)])).outcome == "crashed"


def test_a_failed_unit_is_reported_with_its_result():
    out = run(Scripted([state(active="failed", sub="failed", result="start-limit-hit", pid=0)]))
    assert out.outcome == "failed"
    assert "start-limit-hit" in out.reason


def test_a_stopped_unit_ends_the_wait():
    assert run(Scripted([state(active="inactive", sub="dead", pid=0)])).outcome == "stopped"


def test_timeout_when_nothing_happens():
    out = run(Scripted([state()] * 3), timeout=10, delay=2)
    assert (out.outcome, out.seconds) == ("timeout", 10.0)


def test_unit_state_parses_systemctl_show():
    text = "ActiveState=activating\nSubState=auto-restart\nNRestarts=3\nMainPID=0\nResult=exit-code\nExecMainStatus=1\n"
    assert UnitState.parse(text) == UnitState("activating", "auto-restart", 3, 0, "exit-code", 1)
    assert wait_module.SHOW_PROPERTIES[0] == "ActiveState"


@pytest.mark.parametrize(
    ("cgroup", "layout", "expected"),
    [
        ("12:name=systemd:/system.slice/vllm.service\n0::/system.slice/vllm.service\n", "v1", "systemd"),
        ("0::/system.slice/vllm.service\n", "v2", ""),
    ],
)
def test_reaper_reads_the_units_own_cgroup(tmp_path, cgroup, layout, expected):
    reap = load_file("vllm_reap")
    procs = tmp_path / expected / "system.slice" / "vllm.service" / "cgroup.procs"
    procs.parent.mkdir(parents=True)
    procs.write_text("10\n11\n")
    assert reap.procs_file(cgroup, root=tmp_path) == procs
    assert reap.others(procs, 11) == [10]


def test_reaper_without_a_cgroup_file_does_nothing(tmp_path):
    reap = load_file("vllm_reap")
    assert reap.procs_file("0::/gone.service\n", root=tmp_path) is None


def test_config_check_keeps_the_line_a_user_acts_on():
    check = load_file("vllm_config_check")
    pydantic_like = ValueError(
        "1 validation error for ModelConfig\n  Value error, User-specified max_model_len (10000000) is greater "
        "than the derived max_model_len [type=value_error, input_value=ArgsKwargs(()), input_type=ArgsKwargs]"
    )
    assert check.first_line(pydantic_like) == (
        "User-specified max_model_len (10000000) is greater than the derived max_model_len"
    )
    assert check.first_line(ValueError("plain\nsecond")) == "plain"
