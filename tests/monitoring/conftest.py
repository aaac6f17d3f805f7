"""Shared helpers of the monitoring role's tests: the role's render entry point (as a user runs it, through
ansible-playbook on localhost), promtool, and the role's helper scripts imported by file."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
FILES = ROLE / "files"
CACHE = Path(os.environ.get("CC_CACHE", Path.home() / ".cache" / "classroom-cluster"))
# promtool: on PATH, or Debian's prometheus package unpacked (not installed) into the cache.
_CACHED_PROMTOOL = CACHE / "tools" / "prometheus" / "usr" / "bin" / "promtool"
PROMTOOL = shutil.which("promtool") or (str(_CACHED_PROMTOOL) if _CACHED_PROMTOOL.exists() else None)
PROMTOOL_SKIP = (
    "promtool not found: put it on PATH or unpack Debian's prometheus package into $CC_CACHE/tools/prometheus "
    "(apt-get download prometheus; dpkg-deb -x prometheus_*.deb $CC_CACHE/tools/prometheus); the monitoring "
    "scenario runs the same rule tests with the box's promtool")

PLAYBOOK = """- name: Render the monitoring role's files
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: render
"""

Render = Callable[..., subprocess.CompletedProcess[str]]


def run_render(dest: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    """ansible-playbook with the render entry point. Each extra is one -e: `name=value` for a string (as a user gives
    it on the command line), JSON for anything else."""
    play = dest.parent / f"{dest.name}-play.yml"
    play.write_text(PLAYBOOK)
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"monitoring_render_dir={dest}", str(play)]
    for name, value in extra.items():
        args += ["-e", f"{name}={value}" if isinstance(value, str) else json.dumps({name: value})]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The role's files for its defaults, with two GPUs expected (so that every classroom alert can fire), as
    tests/monitoring/rules_test.yml expects them."""
    dest = tmp_path_factory.mktemp("render") / "defaults"
    proc = run_render(dest, monitoring_alert_gpu_count_min="2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return dest


def load_script(name: str) -> ModuleType:
    """One of the role's helper scripts (files/<name>.py), imported by path as the box runs it."""
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def promtool(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip(PROMTOOL_SKIP)
    return subprocess.run([PROMTOOL, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)
