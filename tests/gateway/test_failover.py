"""The failover judgement on made-up records (the molecule scenario `gateway` runs it on real ones)."""

import json
from pathlib import Path

from tests.gateway.failover import judge, main


def rec(start: float, ok: bool, failure: str | None = None) -> dict[str, object]:
    return {"start_s": start, "ok": ok, "failure": failure}


def test_losses_within_in_flight_pass() -> None:
    records = [rec(1.0, True), rec(4.9, False, "closed_without_done"), rec(5.2, True), rec(8.0, True)]
    result = judge(records, stop_s=5.0, interval_s=1.0, slack_s=0.5, in_flight_on_box=1)
    assert result.passed
    assert (result.failed, result.failed_after_window, result.ok_after_stop) == (1, 0, 1)
    assert result.failed_requests == [{"after_stop_s": -0.1, "failure": "closed_without_done", "chunks": None,
                                       "error": ""}]


def test_more_failures_than_in_flight_fail() -> None:
    records = [rec(4.8, False, "x"), rec(4.9, False, "x"), rec(9.0, True)]
    result = judge(records, stop_s=5.0, interval_s=1.0, slack_s=0.5, in_flight_on_box=1)
    assert not result.passed
    assert "more than the 1 in flight" in result.problems[0]


def test_late_failure_fails() -> None:
    records = [rec(7.0, False, "connect_refused"), rec(9.0, True)]
    result = judge(records, stop_s=5.0, interval_s=1.0, slack_s=0.5, in_flight_on_box=3)
    assert not result.passed
    assert result.failed_after_window == 1


def test_no_takeover_fails() -> None:
    result = judge([rec(1.0, True)], stop_s=5.0, interval_s=1.0, slack_s=0.5, in_flight_on_box=0)
    assert not result.passed


def test_cli_maps_wall_time(tmp_path: Path, capsys: object) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [rec(2.0, True), rec(3.1, False, "x"), rec(6.0, True)]) + "\n")
    # The status file said 2.5 s at wall 1002.5: time zero is wall 1000, so the stop at 1003 is 3 s in.
    rc = main(["--records", str(path), "--status-mtime", "1002.5", "--status-elapsed", "2.5",
               "--stop-wall", "1003", "--interval-s", "1", "--in-flight", "1"])
    assert rc == 0
