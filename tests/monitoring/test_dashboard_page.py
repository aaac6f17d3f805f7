"""The dashboard page in headless Chromium, served by the dashboard server with its key, against a stand-in
Prometheus (a box serving vLLM, with no GPU): every chart holds points, the GPU charts say why they have none, the
tiles show the verdicts, no console error, nothing loaded from anywhere else; and with Prometheus down the page
says so without an error of its own."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring import fake_prometheus
from tests.monitoring.test_dashboard_server import KEY, basic, dashboard
from tests.support.chromium import CHROMIUM, SKIP_REASON, visit

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)

READY = "Number(document.body.dataset.refreshes || 0) >= 1"
STATE = """({
  panels: Array.from(document.querySelectorAll('.panel')).map(p => ({
    id: p.id, state: p.dataset.state, points: Number(p.dataset.points),
    canvas: p.querySelectorAll('canvas').length, width: p.getBoundingClientRect().width,
    note: p.querySelector('.note').textContent})),
  tiles: Object.fromEntries(Array.from(document.querySelectorAll('.tile')).map(t => [t.id,
    {value: t.querySelector('.value').textContent, detail: t.querySelector('.detail').textContent,
     cls: t.className}])),
  status: document.getElementById('status').textContent,
  statusClass: document.getElementById('status').className,
  overflow: document.documentElement.scrollWidth - window.innerWidth
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_page_with_data(rendered: Path, tmp_path: Path) -> None:
    with fake_prometheus.serve() as (url, _), dashboard(rendered, url, key=KEY) as base:
        page = visit(base + "/", ready_js=READY, value_js=STATE, headers={"Authorization": basic(KEY)},
                     screenshot=tmp_path / "page.png", timeout=60)
    assert page.ready, page.value
    assert not page.errors, page.errors
    assert not page.foreign_requests, page.foreign_requests
    assert not page.failed_requests, page.failed_requests
    state: dict[str, Any] = page.value
    panels = {p["id"]: p for p in state["panels"]}
    assert set(panels) == {"panel-gpu_util", "panel-gpu_memory", "panel-requests", "panel-ttft", "panel-itl",
                           "panel-output_tokens", "panel-kv_cache", "panel-restarts"}
    for pid, p in panels.items():
        assert p["canvas"] > 0 and p["width"] > 300, p
        if pid.startswith("panel-gpu"):
            assert p["state"] == "no-gpu" and p["points"] == 0, p
            assert "No GPU seen (no_driver)" in p["note"], p
        else:
            assert p["state"] == "data" and p["points"] > 10, p
    tiles = state["tiles"]
    assert tiles["tile-gate"]["value"] == "PASS" and "pass" in tiles["tile-gate"]["cls"]
    assert tiles["tile-daily"]["value"] == "FAIL" and tiles["tile-daily"]["detail"] == "10 min ago"
    assert tiles["tile-vllm"]["value"] == "up"
    assert tiles["tile-gpus"]["value"] == "0"
    assert tiles["tile-alerts"]["value"] == "1" and "warn" in tiles["tile-alerts"]["cls"]
    assert state["status"].startswith("vLLM 0.26.0 · last 30 min · updated"), state["status"]
    assert state["overflow"] <= 0
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prometheus_down_is_said_on_the_page(rendered: Path) -> None:
    with dashboard(rendered, f"http://127.0.0.1:{free_port()}") as base:
        page = visit(base + "/", ready_js=READY, value_js=STATE, timeout=60)
    assert page.ready, page
    assert not page.errors, page.errors
    assert page.failed_requests and all(r.startswith("502 ") for r in page.failed_requests), page.failed_requests
    state: dict[str, Any] = page.value
    assert state["statusClass"] == "status error" and "queries failed" in state["status"], state["status"]
    assert all(p["state"] == "error" and "did not answer" in p["note"] for p in state["panels"]), state["panels"]


def test_without_the_key_the_page_does_not_load(rendered: Path) -> None:
    with fake_prometheus.serve() as (url, seen), dashboard(rendered, url, key=KEY) as base:
        page = visit(base + "/", ready_js=READY, value_js="document.body.innerText", timeout=3)
    assert not page.ready and page.failed_requests == [f"401 {base}/"], page
    assert not seen.requests
