"""Two real probe reports (the probe against the scripted loopback server), shared by the tests here."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "probe"))

from loopback import serve  # noqa: E402


def load_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def probe_run(base: str, model: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classroom_probe", "run", "--base-url", base, "--model", model, "--max-tokens", "6",
         "--mode", "classroom", "--students", "2", "--duration", "2", "--warmup", "0.5", "--think-min", "0",
         "--think-max", "0.2", "--profile", "lab", "--gpu", "off", "--report-dir", str(out), "--quiet", *extra],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "probe" / "src")})


@pytest.fixture(scope="session")
def loopback_url() -> Iterator[str]:
    with serve() as (base, _):
        yield base


@pytest.fixture(scope="session")
def two_reports(loopback_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reports")
    no_lag = root / "t.json"
    no_lag.write_text('{"probe_loop_lag_p99_ms_max": null}')
    paths = []
    for name, model in (("before", "ok_slow"), ("after", "ok")):
        proc = probe_run(loopback_url, model, root / name, "--thresholds", str(no_lag))
        assert proc.returncode == 0, proc.stderr
        paths.append(root / name / "report.json")
    return paths[0], paths[1]
