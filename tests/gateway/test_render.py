"""The gateway role's config for several boxes, rendered on the controller (no HAProxy, no container).

`haproxy -c` is replaced by `true` here; the molecule scenario `gateway` validates with the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAY = """
- name: Render the gateway config
  hosts: gateways
  gather_facts: false
  roles:
    - role: gateway
      vars:
        gateway_fleet: true
        gateway_install_package: false
        gateway_manage_service: false
        gateway_haproxy_binary: /bin/true
"""


def run(tmp_path: Path, extra: dict[str, object]) -> tuple[subprocess.CompletedProcess[str], str]:
    cfg = tmp_path / "haproxy.cfg"
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {
                "gateways": {"hosts": {"gw": {}}},
                "classroom_boxes": {"hosts": {
                    "box-a": {"ansible_host": "10.0.0.11"},
                    "box-b": {"gateway_box_address": "box-b.lan", "gateway_box_port": 8001},
                }},
            },
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_NOCOLOR": "1"}
    args = {"gateway_config_path": str(cfg), **extra}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
         str(tmp_path / "play.yml"), "-e", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    return proc, cfg.read_text() if cfg.exists() else ""


def test_every_box_is_a_checked_server(tmp_path: Path) -> None:
    proc, text = run(tmp_path, {})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "bind 127.0.0.1:8000" in text  # loopback unless the inventory opens it
    assert "balance leastconn" in text
    assert "http-check send meth GET uri /health" in text
    assert "deny deny_status 403 unless { path_beg /v1/ }" in text
    assert "server box-a 10.0.0.11:8000 check\n" in text
    assert "server box-b box-b.lan:8001 check\n" in text
    assert text.startswith("#")


def test_ollama_kind_and_drained_box(tmp_path: Path) -> None:
    proc, text = run(tmp_path, {"gateway_fleet_kind": "ollama", "gateway_fleet_drained": ["box-b"]})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "http-check send meth GET uri /api/version" in text
    assert "path_beg /api/ /v1/" in text
    assert "server box-b box-b.lan:8001 check disabled" in text


def test_draining_every_box_is_refused(tmp_path: Path) -> None:
    proc, text = run(tmp_path, {"gateway_fleet_drained": ["box-a", "box-b"]})
    assert proc.returncode != 0
    assert "gateway_fleet_drained" in proc.stdout
    assert text == ""


def test_unknown_group_is_refused(tmp_path: Path) -> None:
    proc, _ = run(tmp_path, {"gateway_fleet_group": "no_such_group"})
    assert proc.returncode != 0
    assert "gateway_fleet_group (no_such_group: empty or missing)" in proc.stdout
