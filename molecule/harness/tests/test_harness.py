"""The harness container runs systemd as PID 1 and the service converge installed."""

import time


def test_pid1_is_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    assert state in {"running", "degraded"}, host.run("systemctl --failed --no-legend").stdout


def test_service_enabled_and_running(host):
    svc = host.service("harness-http")
    assert svc.is_enabled
    assert svc.is_running


def test_service_answers_http(host):
    deadline = time.monotonic() + 20
    out = ""
    while time.monotonic() < deadline:
        out = host.run("curl -sf http://127.0.0.1:8088/marker.txt").stdout
        if out:
            break
        time.sleep(0.5)
    assert out.strip() == "harness-ok"


def test_systemd_restarts_killed_service(host):
    pid = host.run("systemctl show -p MainPID --value harness-http").stdout.strip()
    host.run(f"kill -9 {pid}")
    deadline = time.monotonic() + 20
    new = pid
    while time.monotonic() < deadline and new in {pid, "0"}:
        time.sleep(0.5)
        new = host.run("systemctl show -p MainPID --value harness-http").stdout.strip()
    assert new not in {pid, "0"}
