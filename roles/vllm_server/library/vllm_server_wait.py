#!/usr/bin/python
"""Ansible module: wait until the vLLM unit serves, and stop waiting the moment it crashes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_server_wait
short_description: Wait for a vLLM systemd unit to answer /health, watching the unit itself
description:
  - Polls the unit's state (C(systemctl show)) and C(<url>/health) until /health answers 200.
  - Gives up within seconds of a crash instead of at the timeout: the unit failed, entered
    systemd's auto-restart, its restart counter rose, or its main process changed after it had
    started. vLLM opens its port only once the engine is ready, so a crash during start-up is
    seen by the unit, never by HTTP.
  - Read-only: it never starts, stops or restarts anything.
options:
  unit:
    description: Unit name, e.g. vllm.service.
    type: str
    required: true
  url:
    description: Base URL of the server as seen from the box (http://127.0.0.1:8000).
    type: str
    required: true
  timeout:
    description: Seconds to wait for /health at most.
    type: int
    default: 900
  delay:
    description: Seconds between two polls.
    type: float
    default: 2
author: Classroom Cluster
"""

RETURN = r"""
healthy:
  description: Whether /health answered 200 before the timeout and without a crash.
  returned: always
  type: bool
outcome:
  description: healthy, crashed, failed, stopped or timeout.
  returned: always
  type: str
reason:
  description: One sentence saying what was seen.
  returned: always
  type: str
seconds:
  description: Seconds waited.
  returned: always
  type: float
unit_state:
  description: The unit's last ActiveState, SubState, NRestarts, MainPID, Result and ExecMainStatus.
  returned: always
  type: dict
"""

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ansible.module_utils.basic import AnsibleModule

SHOW_PROPERTIES = ("ActiveState", "SubState", "NRestarts", "MainPID", "Result", "ExecMainStatus")


@dataclass(frozen=True)
class UnitState:
    active: str
    sub: str
    restarts: int
    main_pid: int
    result: str
    exit_status: int

    @classmethod
    def parse(cls, text: str) -> UnitState:
        """From ``systemctl show -p ...`` output (KEY=value lines)."""
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

        def number(key: str) -> int:
            try:
                return int(values.get(key, "0") or 0)
            except ValueError:
                return 0

        return cls(
            active=values.get("ActiveState", ""),
            sub=values.get("SubState", ""),
            restarts=number("NRestarts"),
            main_pid=number("MainPID"),
            result=values.get("Result", ""),
            exit_status=number("ExecMainStatus"),
        )


@dataclass(frozen=True)
class Outcome:
    healthy: bool
    outcome: str
    reason: str
    seconds: float
    unit_state: dict[str, Any]


def judge(first: UnitState, now: UnitState, started_pid: int) -> tuple[str, str] | None:
    """A crash or stop seen in the unit's state, or None while it may still come up."""
    if now.active == "failed":
        return "failed", f"the unit failed (result {now.result or 'unknown'}, exit status {now.exit_status})"
    if now.sub == "auto-restart" or now.restarts > first.restarts:
        again = f", restart {now.restarts}" if now.restarts else ""
        return "crashed", f"the server exited (exit status {now.exit_status}) and systemd is restarting it{again}"
    if started_pid and now.main_pid and now.main_pid != started_pid:
        return "crashed", f"the main process changed from {started_pid} to {now.main_pid}: the server restarted"
    if now.active in {"inactive", "deactivating"}:
        return "stopped", f"the unit is {now.active} ({now.sub}); nothing is starting it"
    return None


def wait(
    show: Callable[[], UnitState],
    healthy: Callable[[], bool],
    *,
    timeout: float,
    delay: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    start = clock()
    first = show()
    state = first
    started_pid = 0
    while True:
        state = show()
        if state.active == "active" and state.main_pid and not started_pid:
            started_pid = state.main_pid
        verdict = judge(first, state, started_pid)
        elapsed = clock() - start
        if verdict:
            return Outcome(False, verdict[0], verdict[1], round(elapsed, 1), asdict(state))
        if state.active == "active" and healthy():
            return Outcome(True, "healthy", "/health answered 200", round(clock() - start, 1), asdict(state))
        if elapsed >= timeout:
            return Outcome(
                False,
                "timeout",
                f"/health did not answer 200 within {timeout:.0f} s (unit {state.active}/{state.sub})",
                round(elapsed, 1),
                asdict(state),
            )
        sleep(delay)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "url": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 900},
            "delay": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    unit, url = module.params["unit"], module.params["url"].rstrip("/")
    systemctl = module.get_bin_path("systemctl", required=True)

    def show() -> UnitState:
        rc, out, err = module.run_command([systemctl, "show", unit, *(f"-p{p}" for p in SHOW_PROPERTIES)])
        if rc != 0:
            module.fail_json(msg=f"systemctl show {unit} failed: {err.strip() or out.strip()}")
        return UnitState.parse(str(out))

    outcome = wait(
        show,
        lambda: http_ok(f"{url}/health"),
        timeout=float(module.params["timeout"]),
        delay=float(module.params["delay"]),
    )
    module.exit_json(changed=False, **asdict(outcome))


if __name__ == "__main__":
    main()
