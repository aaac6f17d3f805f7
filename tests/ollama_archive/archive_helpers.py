"""A small box in a temporary folder: unit files, an environment file, a key, HAProxy, results and a store,
with the discovery facts the role's modules take, and a runner for the modules themselves."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ollama_archive_discover import archive_files, store_facts

from tests.standins.standin_helpers import make_store

MTIME = 1735689600


def run_module(module: Any, args: dict[str, Any], check: bool = False) -> dict[str, Any]:
    """Runs an Ansible module's main() in-process; returns its JSON result."""
    out = io.StringIO()
    with patch_module_args({**args, "_ansible_check_mode": check}), redirect_stdout(out), \
            pytest.raises(SystemExit):
        module.main()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def write(path: Path, text: str, mode: int = 0o644) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    os.utime(path, (MTIME, MTIME))
    return str(path)


def make_box(tmp: Path) -> dict[str, Any]:
    """Discovery facts for one instance of a tiny box under tmp."""
    etc = tmp / "etc"
    unit = write(etc / "systemd/system/ollama@.service", "[Service]\nExecStart=/usr/local/bin/ollama serve\n")
    drop_in = write(etc / "systemd/system/ollama@0.service.d/models.conf",
                    '[Service]\nEnvironment="OLLAMA_MODELS=%s"\n' % (tmp / "models"))
    env_file = write(etc / "ollama/instance-0.env", "OLLAMA_HOST=127.0.0.1:11435\nCUDA_VISIBLE_DEVICES=0\n")
    home = tmp / "home"
    write(home / ".ollama/id_ed25519", "STAND-IN KEY\n", 0o600)
    haproxy = write(etc / "haproxy/haproxy.cfg", "frontend ollama\n  bind 127.0.0.1:11434\n  default_backend o\n"
                    "backend o\n  server g0 127.0.0.1:11435\n")
    result = write(tmp / "results/bench.json", "{}\n")
    make_store(tmp / "models", "classroom-tiny:latest")
    instance = {
        "unit": "ollama@0.service", "kind": "template-instance", "fragment": unit, "drop_ins": [drop_in],
        "environment_files": [{"path": env_file, "ignore_errors": False, "exists": True}], "home": str(home),
        "models_dir": str(tmp / "models"), "state": {"active": "active", "enabled": "enabled"},
        "url": "http://127.0.0.1:11435", "environment": {"CUDA_VISIBLE_DEVICES": "0"}, "exec_start": [],
        "api": {"version": "0.33.0", "tags": [], "ps": []}, "mask": "persistent",
    }
    stores = store_facts([instance], True)
    return {
        "state": "live",
        "instances": [instance],
        "stores": stores,
        "files": archive_files([instance], stores, haproxy, [result]),
        "binary": {"path": "/usr/local/bin/ollama", "version": "0.33.0"},
        "gpu": {"available": False, "reason": "nvidia-smi not found on this box", "processes": []},
        "haproxy": {"path": haproxy, "exists": True, "ollama_servers": [], "ollama_frontends": ["ollama"],
                    "ollama_backends": ["o"]},
        "results": [result],
        "checked_blob_digests": True,
    }
