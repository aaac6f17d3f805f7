"""Every kind of report, rendered: no Python literal in any of them, the typed schema holds, every plot has
data, and headless Chromium opens each page with no console error and no network request."""

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from classroom_probe.compare import compare_html, compare_markdown
from classroom_probe.config import Config
from classroom_probe.outputs import render_all
from classroom_probe.records import RequestRecord
from classroom_probe.report import Report, report_schema
from classroom_probe.runner import run
from classroom_probe.thresholds import PROFILES
from loopback import State

from tests.support.chromium import CHROMIUM, SKIP_REASON, chromium

ROOT = Path(__file__).resolve().parents[2]
LAB = replace(PROFILES["lab"], probe_loop_lag_p99_ms_max=None)
LITERAL = re.compile(r"\b(True|False|None)\b")
SMI = r"""#!/bin/sh
case "$*" in
  *name*) printf '0, NVIDIA H200, 143771, 570.86.15\n1, NVIDIA H200, 143771, 570.86.15\n';;
  *) printf '0, 61, 70123, 143771\n1, 58, 69980, 143771\n';;
esac
"""


def _config(base: str, **kw: object) -> Config:
    options: dict[str, object] = {"base_url": base, "model": "ok", "max_tokens": 8, "mode": "batch", "requests": 4,
                                  "concurrency": 2, "warmup": 0.0, "gpu": "off", "metrics_url": "auto",
                                  "profile": "lab", "thresholds": LAB}
    options.update(kw)
    return Config(**options)  # type: ignore[arg-type]


def _slow_hook(_: RequestRecord) -> None:
    # Each record blocks the loop well past the lab profile's 50 ms loop-lag limit, so the run is always
    # inconclusive; 30 ms blocks stayed under it whenever they did not happen to coincide.
    end = time.perf_counter() + 0.12
    while time.perf_counter() < end:
        pass


@pytest.fixture(scope="module")
def reports(loopback: tuple[str, State], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Report]]:
    base, _ = loopback
    tmp = tmp_path_factory.mktemp("kinds")
    smi = tmp / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{smi.parent}:{path}"
    try:
        runs = {
            "classroom with GPUs": _config(base, model="ok_slow", mode="classroom", students=3, duration=2.2,
                                           warmup=0.5, think_min=0.0, think_max=0.2, requests=None, gpu="smi",
                                           profile="classroom",
                                           thresholds=replace(PROFILES["classroom"], probe_loop_lag_p99_ms_max=None)),
            "batch with failures": _config(base, model="error_after", requests=6),
            "rate": _config(base, mode="rate", rate=20.0, duration=0.6, requests=None),
            "ramp": _config(base, model="ok_slow", mode="ramp", ramp_start=1, ramp_step=2, ramp_max=3,
                            ramp_step_duration=0.6, think_min=0.0, think_max=0.05, requests=None,
                            thresholds=replace(LAB, ttft_p95_ms_max=5000.0)),
            "ollama": _config(base, model="llama-ok", api="ollama", metrics_url="off"),
            "nothing succeeded": _config(base, model="http_503"),
        }
        out = {name: run(c).report for name, c in runs.items()}
        lagging = run(_config(base, requests=10, thresholds=PROFILES["lab"]), on_record=_slow_hook)
        out["inconclusive"] = lagging.report
    finally:
        os.environ["PATH"] = path
    assert out["inconclusive"]["verdict"]["status"] == "inconclusive"
    assert out["nothing succeeded"]["aggregates"]["requests_ok"] == 0
    yield out


def rendered(reports: dict[str, Report]) -> dict[str, str]:
    texts = {f"{name}: {file}": text for name, r in reports.items() for file, text in render_all(r).items()
             if file != "report.json"}
    a, b = reports["classroom with GPUs"], reports["batch with failures"]
    texts["compare.md"] = compare_markdown(a, b, "before", "after")
    texts["compare.html"] = compare_html(a, b, "before", "after")
    return texts


def test_reports_follow_their_typed_schema(reports: dict[str, Report]) -> None:
    schema = report_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for name, r in reports.items():
        doc = json.loads(json.dumps(r))
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert not problems, (name, problems[:3])
        assert doc["schema_version"] == 2


def test_no_python_literal_in_any_report_or_output(reports: dict[str, Report]) -> None:
    for name, text in rendered(reports).items():
        found = LITERAL.findall(re.sub(r"<[^>]*>", " ", text)) + LITERAL.findall(text)
        assert not found, f"{name}: {found[:5]}"


def test_the_command_line_prints_no_python_literal(loopback: tuple[str, State], tmp_path: Path) -> None:
    base, _ = loopback
    env = {"PYTHONPATH": str(ROOT / "probe" / "src"), "PATH": "/usr/bin:/bin"}
    common = ["run", "--base-url", base, "--model", "error_after", "--max-tokens", "6", "--mode", "batch",
              "--requests", "3", "--gpu", "off", "--warmup", "0", "--report-dir", str(tmp_path / "r")]
    for extra in ([], ["--quiet"]):
        out = subprocess.run([sys.executable, "-m", "classroom_probe", *common, *extra], capture_output=True,
                             text=True, timeout=60, env=env, check=False)
        assert out.returncode == 1, out.stderr
        assert not LITERAL.findall(out.stdout + out.stderr), out.stdout + out.stderr
    line = json.loads(out.stdout)
    assert line["status"] == "fail" and "Failed requests [failures_max]" in line["checks_table"]
    assert not LITERAL.findall(line["checks_table"])
    for sub in (["checks"], ["schema", "run-file"], ["run", "--help"]):
        out = subprocess.run([sys.executable, "-m", "classroom_probe", *sub], capture_output=True, text=True,
                             timeout=60, env=env, check=False)
        assert out.returncode == 0 and not LITERAL.findall(out.stdout.replace("null", "")), sub


def plots_of(html: str) -> list[tuple[str, int]]:
    return [(m.group(2), int(m.group(1))) for m in
            re.finditer(r'<svg class="plot" data-points="(\d+)"[^>]*aria-label="([^"]*)"', html)]


def test_every_plot_has_data_and_the_pages_need_no_network(reports: dict[str, Report]) -> None:
    for name, text in rendered(reports).items():
        if not name.endswith("html"):
            continue
        assert "Content-Security-Policy" in text and "default-src 'none'" in text
        assert not any(tag in text for tag in ("<script", "<link", "src=", "href=")), name
        plots = plots_of(text)
        assert plots and all(points > 0 for _, points in plots), (name, plots)
    titles = {name: [t for t, _ in plots_of(render_all(r)["report.html"])] for name, r in reports.items()}
    assert "Capacity: wait for the first word" in titles["ramp"]
    assert "Capacity: answer speed per student" in titles["ramp"]
    assert "Failed requests by kind" in titles["batch with failures"]
    assert {"GPU utilisation", "GPU memory used", "KV cache usage (server)", "Requests in flight"} <= set(
        titles["classroom with GPUs"])
    page = render_all(reports["classroom with GPUs"])["report.html"]
    assert "2 x NVIDIA H200 (140 GiB), driver 570.86.15" in page and "vLLM 0.0.1+loopback" in page
    for check in reports["ramp"]["verdict"]["checks"]:
        assert f'id="check-{check["id"]}"' in render_all(reports["ramp"])["report.html"]


PROBE_JS = """JSON.stringify({
  plots: Array.from(document.querySelectorAll('svg.plot')).map(s => ({
    title: s.getAttribute('aria-label'),
    marks: s.querySelectorAll('polyline.series, rect.bar, circle').length,
    width: s.getBoundingClientRect().width})),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  status: (document.querySelector('.banner .status') || {}).textContent || null})"""


async def _inspect(pages: list[Path], profile: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with chromium(profile, (1280, 900)) as tab:
        for page in pages:
            tab.events.clear()
            await tab.call("Page.navigate", url=page.as_uri())
            await tab.wait_for_event("Page.loadEventFired", 30)
            value = await tab.evaluate(PROBE_JS)
            await asyncio.sleep(0.2)  # late console messages
            await tab.evaluate("0")  # collects them into tab.events
            requests = [e["params"]["request"]["url"] for e in tab.events
                        if e.get("method") == "Network.requestWillBeSent"
                        and not e["params"]["request"]["url"].startswith(("file:", "data:"))]
            out[page.name] = {**json.loads(value), "errors": tab.errors(), "requests": requests}
    return out


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_pages_render_in_headless_chromium(reports: dict[str, Report], tmp_path: Path) -> None:
    pages = []
    for name, r in reports.items():
        page = tmp_path / (name.replace(" ", "-") + ".html")
        page.write_text(render_all(r)["report.html"])
        pages.append(page)
    cmp = tmp_path / "compare.html"
    cmp.write_text(compare_html(reports["classroom with GPUs"], reports["batch with failures"], "before", "after"))
    pages.append(cmp)
    broken = tmp_path / "broken.html"  # proves the check sees what it looks for
    broken.write_text('<!DOCTYPE html><html><body><svg class="plot" aria-label="empty"></svg>'
                      '<script>console.error("seen"); undefinedCall();</script></body></html>')
    profile = tmp_path / "profile"
    profile.mkdir()
    seen = asyncio.run(_inspect([*pages, broken], profile))
    bad = seen["broken.html"]
    assert len(bad["errors"]) >= 2 and [(p["title"], p["marks"]) for p in bad["plots"]] == [("empty", 0)]
    for page in pages:
        got = seen[page.name]
        assert not got["errors"], (page.name, got["errors"])
        assert not got["requests"], (page.name, got["requests"])
        assert got["plots"], page.name
        for plot in got["plots"]:
            assert plot["marks"] > 0 and plot["width"] > 100, (page.name, plot)
        assert got["overflow"] <= 0, (page.name, "wider than the window")
    assert seen["inconclusive.html"]["status"] == "INCONCLUSIVE"
