"""The monitoring stack on the lab box as a teacher and an admin meet it: every target up, every rule loaded and
evaluated, the GPU exporter saying why it sees no GPU, only the dashboard beyond loopback and behind its key, the
page in headless Chromium during a probe run with data in its charts, the verdicts published, and killing
vllm.service firing the restart alert within a bounded wait. Last, the scenario's time from prepare on.

vllm.service is a TEST STAND-IN for vLLM here (tests/standins/vllm: a /metrics page with the families of the one
recorded from vLLM 0.32.0, values moved by the requests it serves). Whether the real engine exposes every metric
name the role uses, and whether every Grafana expression answers from its data, is checked by the site scenario
against the real engine (molecule/site/files/check_monitoring.py), so it is not checked here.

Chromium runs on the machine running the containers and reaches the dashboard at the box's address on podman's
network (no port is published; loopback inside the box is not reachable from outside it)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(PROJECT))

from tests.support.chromium import CHROMIUM, SKIP_REASON, visit  # noqa: E402

BOX = "monitoring-box"
KEY = "molecule-dashboard-key-not-secret"
PROM = "http://127.0.0.1:9090"
DASHBOARD_PORT = 9190
OWN_JOBS = {"prometheus", "node", "gpu", "vllm", "alertmanager"}
CLASSROOM_ALERTS = 10
# systemd-analyze security: the OK band ends at 4.5 (the vLLM unit's scenario uses the same limit).
EXPOSURE_LIMIT = 4.5
# Scrapes and evaluations are every 5 s here; systemd restarts the stand-in 1 s after it dies. A busy machine
# stretches all of it: the bound is loose, the time it took is printed.
RESTART_ALERT_LIMIT_S = 180
GPU_METRICS = "classroom_gpu_"
SCREENSHOT = os.environ.get("MONITORING_SCREENSHOT")
STARTED = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "monitoring-started"


@pytest.fixture(scope="module", autouse=True)
def scenario_time():
    """After the module's last test: the time from prepare's first task, as the other scenarios print it."""
    yield
    if STARTED.exists():
        took = int(time.time()) - int(STARTED.read_text().strip())
        print(f"\nScenario monitoring: {took} s from prepare to verify (create and destroy not counted).")


def prom(host, path: str) -> dict[str, Any]:
    out = host.check_output(f"curl -sf --max-time 20 {shlex.quote(PROM + path)}")
    return json.loads(out)  # type: ignore[no-any-return]


def query(host, expr: str) -> list[dict[str, Any]]:
    return prom(host, "/api/v1/query?query=" + quote(expr))["data"]["result"]  # type: ignore[no-any-return]


def wait_for(what: str, probe, limit_s: float, every_s: float = 2.0):
    deadline = time.monotonic() + limit_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {limit_s} s (last: {last})")


def journal(host, unit: str) -> str:
    return host.run(f"journalctl -u {unit} -n 30 --no-pager -o cat").stdout


def box_address() -> str:
    out = subprocess.run(["podman", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", BOX], capture_output=True,
                         text=True, timeout=30, check=True).stdout.strip()
    assert out, "the box has no address on podman's network"
    return out


@pytest.mark.parametrize("unit", ["prometheus", "prometheus-node-exporter", "classroom-gpu-exporter",
                                  "classroom-dashboard", "classroom-verdicts.timer", "classroom-verdicts.path",
                                  "prometheus-alertmanager"])
def test_services_enabled_and_running(host, unit):
    svc = host.service(unit)
    assert svc.is_enabled, unit
    assert svc.is_running, journal(host, unit)


def test_every_scrape_target_is_up(host):
    def targets():
        active = prom(host, "/api/v1/targets?state=active")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in active}
        return health if set(health) == OWN_JOBS and set(health.values()) == {"up"} else None

    print(wait_for("every target up", targets, 120))


def test_every_rule_loads_and_evaluates(host):
    def rules():
        groups = prom(host, "/api/v1/rules?type=alert")["data"]["groups"]
        found = [r for g in groups for r in g["rules"]]
        evaluated = [r for r in found if r.get("health") == "ok" and r.get("lastEvaluation", "").startswith("20")]
        return found if len(found) == CLASSROOM_ALERTS and len(evaluated) == len(found) else None

    names = sorted(r["name"] for r in wait_for("every rule loaded and evaluated", rules, 60))
    print(names)
    assert all(name.startswith("Classroom") for name in names)


def test_node_exporter_sees_the_units_and_their_restarts(host):
    assert query(host, 'node_systemd_unit_state{name="vllm.service",state="active"} == 1')
    assert query(host, 'node_systemd_service_restart_total{name="vllm.service"}')
    names = {r["metric"]["name"] for r in query(host, "node_systemd_unit_state")}
    assert {"prometheus.service", "classroom-gpu-exporter.service", "classroom-dashboard.service"} <= names
    assert len(names) < 20, f"the systemd collector reads only the units it is told: {sorted(names)}"


def test_the_gpu_exporter_says_it_sees_no_gpu(host):
    out = host.check_output("curl -sf http://127.0.0.1:9836/metrics")
    assert "classroom_gpu_count 0.0" in out
    assert 'reason="no_driver"' in out, out[:2000]
    props = host.check_output("systemctl show classroom-gpu-exporter -p DynamicUser -p User -p ProtectSystem")
    assert "DynamicUser=yes" in props and "ProtectSystem=strict" in props


@pytest.mark.parametrize("unit", ["classroom-gpu-exporter.service", "classroom-dashboard.service",
                                  "classroom-verdicts.service"])
def test_exposure_is_in_systemds_ok_band(host, unit):
    out = host.check_output(f"systemd-analyze security {unit} --no-pager")
    level = float(out.strip().splitlines()[-1].split(f"level for {unit}:")[1].split()[0])
    print(f"EXPOSURE {unit} {level}")
    assert level <= EXPOSURE_LIMIT, out


def test_only_the_dashboard_listens_beyond_loopback(host):
    sockets = [line.split()[3] for line in host.check_output("ss -ltnH").splitlines() if line.strip()]

    def loopback(address: str) -> bool:
        ip = address.rsplit(":", 1)[0].strip("[]")
        return ip.startswith("127.") or ip == "::1"

    beyond = sorted(a for a in sockets if not loopback(a))
    assert beyond == [f"0.0.0.0:{DASHBOARD_PORT}"], f"beyond loopback: {beyond} (all: {sockets})"
    for port in (9090, 9100, 9836, 9093, 8000):
        assert f"127.0.0.1:{port}" in sockets, (port, sockets)


def test_the_dashboard_wants_its_key_from_the_container_network():
    base = f"http://{box_address()}:{DASHBOARD_PORT}"

    def status(path: str, auth: str | None = None) -> int:
        req = urllib.request.Request(base + path, headers={"Authorization": auth} if auth else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    good = "Basic " + base64.b64encode(f"teacher:{KEY}".encode()).decode()
    assert status("/healthz") == 200
    assert status("/") == 401
    assert status("/api/v1/query?query=up") == 401
    assert status("/", "Bearer wrong") == 401
    assert status("/", good) == 200
    assert status("/api/v1/query?query=up", good) == 200
    assert status("/api/v1/admin/tsdb/snapshot", good) == 404


def test_the_verdicts_are_published(host):
    gate_dirs = host.check_output("ls -1 /var/lib/classroom-probe/reports").split()
    newest = sorted(d for d in gate_dirs if host.file(f"/var/lib/classroom-probe/reports/{d}/report.json").exists)[-1]
    status = json.loads(host.file(f"/var/lib/classroom-probe/reports/{newest}/report.json").content_string)
    status = status["verdict"]["status"]

    def published():
        gate = query(host, 'classroom_check_status{check="gate"} == 1')
        daily = query(host, 'classroom_check_status{check="daily"} == 1')
        return (gate, daily) if gate and daily else None

    gate, daily = wait_for("the verdicts in Prometheus", published, 60)
    assert gate[0]["metric"]["status"] == status
    assert daily[0]["metric"]["status"] == "pass"
    info = query(host, 'classroom_check_info{check="gate"}')
    assert info[0]["metric"]["report_dir"] == f"/var/lib/classroom-probe/reports/{newest}"


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_the_dashboard_in_chromium_during_a_probe_run(host, tmp_path):
    """A few seconds of load from the gate's probe, then the page: data in every chart but the GPU ones (which say
    why they have none), the verdict tiles filled, no console error, nothing fetched from anywhere else."""
    # A transient unit, so that the run outlives this command's session.
    host.check_output("systemd-run --unit=dashboard-probe --collect /opt/classroom-probe/venv/bin/python -m "
                      "classroom_probe run --config /etc/classroom-probe/run.json --duration 12 --warmup 0 "
                      "--report-dir /var/tmp/dashboard-probe --quiet")
    # This run's tokens, not the gate's of prepare: the charts' rates need them within their window.
    wait_for("this run's requests in Prometheus",
             lambda: query(host, "sum(rate(vllm:generation_tokens_total[1m])) > 0"), 60)
    time.sleep(8)
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "dashboard.png"
    auth = "Basic " + base64.b64encode(f"teacher:{KEY}".encode()).decode()
    ready = ("Number(document.body.dataset.refreshes || 0) >= 2 && "
             "Array.from(document.querySelectorAll('.panel')).every(p => p.dataset.state !== 'loading')")
    state = """({
      panels: Array.from(document.querySelectorAll('.panel')).map(p => ({id: p.id, state: p.dataset.state,
        points: Number(p.dataset.points), canvas: p.querySelectorAll('canvas').length,
        note: p.querySelector('.note').textContent})),
      tiles: Object.fromEntries(Array.from(document.querySelectorAll('.tile')).map(t =>
        [t.id, t.querySelector('.value').textContent])),
      status: document.getElementById('status').textContent})"""
    page = visit(f"http://{box_address()}:{DASHBOARD_PORT}/", ready_js=ready, value_js=state,
                 headers={"Authorization": auth}, timeout=90, screenshot=shot, size=(1400, 1000))
    print(json.dumps(page.value, indent=1))
    print(f"SCREENSHOT {shot}")
    assert page.ready, page.value
    assert not page.errors, page.errors
    assert not page.foreign_requests and not page.failed_requests, (page.foreign_requests, page.failed_requests)
    for panel in page.value["panels"]:
        assert panel["canvas"] > 0, panel
        if panel["id"].startswith("panel-gpu"):
            assert panel["state"] == "no-gpu" and "no_driver" in panel["note"], panel
        else:
            assert panel["state"] == "data" and panel["points"] > 0, panel
    tiles = page.value["tiles"]
    assert tiles["tile-gate"] in {"PASS", "FAIL", "INCONCLUSIVE"} and tiles["tile-daily"] == "PASS", tiles
    assert tiles["tile-vllm"] == "up" and tiles["tile-gpus"] == "0", tiles
    assert "vLLM 0.32.0" in page.value["status"]
    wait_for("the probe run's end", lambda: host.run("systemctl is-active --quiet dashboard-probe").rc != 0, 120)


def test_a_new_daily_result_is_published_at_once_and_a_failure_alerts(host):
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "fail",
                       "ttft_p95_ms": 900.0, "student_output_tok_s_p50": 8.0, "failures": 2, "report_dir": "/x"})
    host.check_output(f"printf '%s\\n' {shlex.quote(line)} >> /var/lib/classroom-probe/healthcheck/history.jsonl")
    started = time.monotonic()
    # The path unit runs the verdicts script as soon as the history changes; node-exporter serves the new file.
    wait_for("the failed daily check in node-exporter's output",
             lambda: 'classroom_check_status{check="daily",status="fail"} 1' in
             host.check_output("curl -sf http://127.0.0.1:9100/metrics"), 30, 0.5)
    print(f"PUBLISHED after {time.monotonic() - started:.1f} s")

    def firing():
        alerts = prom(host, "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ClassroomCheckFailed" and a["state"] == "firing"]

    assert wait_for("ClassroomCheckFailed firing", firing, 60)[0]["labels"]["check"] == "daily"


def test_killing_vllm_fires_the_restart_alert(host):
    """Last: vllm.service is killed as the OOM killer would kill vLLM; systemd restarts it and the alert fires, in
    Prometheus and in Alertmanager. The time it took is printed (busy machine: a label, not a measurement)."""
    before = query(host, 'node_systemd_service_restart_total{name="vllm.service"}')[0]["value"][1]
    assert not [a for a in prom(host, "/api/v1/alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == "ClassroomVLLMRestarted"]
    host.check_output("systemctl kill --signal=SIGKILL vllm.service")
    killed = time.monotonic()

    def firing():
        alerts = prom(host, "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ClassroomVLLMRestarted" and a["state"] == "firing"]

    alert = wait_for("ClassroomVLLMRestarted firing", firing, RESTART_ALERT_LIMIT_S, 1.0)
    took = time.monotonic() - killed
    print(f"RESTART ALERT FIRED after {took:.1f} s (restarts before: {before})")
    assert alert[0]["labels"]["name"] == "vllm.service"

    def in_alertmanager():
        out = host.check_output("curl -sf http://127.0.0.1:9093/api/v2/alerts")
        return [a for a in json.loads(out) if a["labels"]["alertname"] == "ClassroomVLLMRestarted"]

    wait_for("the alert in Alertmanager", in_alertmanager, 60)
