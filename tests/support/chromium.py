"""Headless Chromium over the DevTools protocol, for the pages the project writes (probe reports, the dashboard).
`chromium()` starts one and hands over its page; `visit()` opens one URL with extra request headers, waits until
the page says it is ready, reads a value from it, and optionally takes a screenshot.
Console errors and uncaught exceptions, requests to any other origin and responses with an error status are
collected apart, so a test can assert none (or the ones it expects)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SKIP_REASON = "chromium is not installed (scripts/setup-host.sh installs it; make test runs that first)"


@dataclass
class Page:
    """What one visit saw."""

    value: Any = None
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    ready: bool = False


def _error_text(event: dict[str, Any]) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return str(details.get("exception", {}).get("description") or details.get("text"))
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
    # A response with an error status is logged here too (source "network"): failed_requests lists those.
    entry = params.get("entry", {})
    if method == "Log.entryAdded" and entry.get("level") == "error" and entry.get("source") != "network":
        return str(entry.get("text"))
    return None


class DevTools:
    """One page of a running headless Chromium, driven over the DevTools protocol. Every event that arrives
    while a call waits for its answer is kept in `events`, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._ids = iter(range(1, 1_000_000))

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        n = next(self._ids)
        await self.ws.send_json({"id": n, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 60)
            if msg.get("id") == n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})  # type: ignore[no-any-return]
            self.events.append(msg)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for_event(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events) and time.monotonic() < deadline:
            self.events.append(await asyncio.wait_for(self.ws.receive_json(), timeout))
        return any(e.get("method") == method for e in self.events)

    def errors(self) -> list[str]:
        return [text for text in map(_error_text, self.events) if text is not None]


@asynccontextmanager
async def chromium(profile: Path, size: tuple[int, int] = (1400, 1000)) -> AsyncIterator[DevTools]:
    """A fresh headless Chromium on an empty profile folder, its first page enabled for Page, Runtime, Log and
    Network events; stopped on exit. Nothing it opens is kept."""
    assert CHROMIUM is not None, SKIP_REASON
    log = (profile / "chromium.log").open("w")
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", f"--window-size={size[0]},{size[1]}", "about:blank"],
                            stdout=log, stderr=log)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited {proc.returncode}: {(profile / 'chromium.log').read_text()}")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                tab = DevTools(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await tab.call(f"{domain}.enable")
                yield tab
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def _visit(url: str, headers: dict[str, str], ready_js: str, value_js: str, timeout: float,
                 screenshot: Path | None, size: tuple[int, int], profile: Path) -> Page:
    async with chromium(profile, size) as tab:
        if headers:
            await tab.call("Network.setExtraHTTPHeaders", headers=headers)
        await tab.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
        await tab.call("Page.navigate", url=url)
        page = Page()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await tab.evaluate(ready_js):
                page.ready = True
                break
            await asyncio.sleep(0.5)
        page.value = json.loads(await tab.evaluate(f"JSON.stringify({value_js})") or "null")
        if screenshot is not None:
            shot = await tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        await asyncio.sleep(0.3)  # late console messages
        await tab.evaluate("0")  # collects them into tab.events
        page.errors = tab.errors()
        origin = urlsplit(url)._replace(path="", query="", fragment="").geturl()
        for event in tab.events:
            if event.get("method") == "Network.requestWillBeSent":
                target = event["params"]["request"]["url"]
                if not target.startswith((origin, "data:")):
                    page.foreign_requests.append(target)
            if event.get("method") == "Network.responseReceived":
                response = event["params"]["response"]
                if response.get("status", 200) >= 400:
                    page.failed_requests.append(f"{response.get('status')} {response.get('url')}")
        return page


def visit(url: str, *, ready_js: str, value_js: str, headers: dict[str, str] | None = None, timeout: float = 60,
          screenshot: Path | None = None, size: tuple[int, int] = (1400, 1000)) -> Page:
    """Open url in a fresh headless Chromium; ready_js is polled until truthy (or timeout), then value_js is read."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return asyncio.run(_visit(url, headers or {}, ready_js, value_js, timeout, screenshot, size, Path(profile)))
