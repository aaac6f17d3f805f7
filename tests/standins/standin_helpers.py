"""Helpers for the stand-in tests: a running Ollama stand-in on loopback over a store from make_store.py."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

STANDIN = Path(__file__).resolve().parent / "ollama"


def _load(name: str, path: Path) -> ModuleType:
    """The stand-in is a script installed on boxes, not a package: load it from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


standin = _load("ollama_standin", STANDIN / "ollama_standin.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_store(models: Path, *names: str, extra: tuple[str, ...] = ()) -> None:
    subprocess.run([sys.executable, str(STANDIN / "make_store.py"), str(models), *names, *extra],
                   check=True, capture_output=True)


@dataclass
class Running:
    url: str
    models: Path
    home: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return request(self.url + path)

    def post(self, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
        return request(self.url + path, json.dumps(body).encode())

    def log(self) -> str:
        self.proc.terminate()
        self.proc.wait(5)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()


def request(url: str, data: bytes | None = None, method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def start(tmp: Path, models: Path, **env: str) -> Running:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    port = free_port()
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "HOME": str(home),
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(models),
        "STANDIN_FIRST_TOKEN_MS": "1",
        "STANDIN_TOKEN_MS": "1",
        **env,
    }
    proc = subprocess.Popen([sys.executable, str(STANDIN / "ollama_standin.py"), "serve"], env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"stand-in exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            request(url + "/")
            return Running(url, models, home, proc, full)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("stand-in did not listen within 20 s")
