"""The layout entry point refuses a box where the main entry point has not installed the service (run on the
controller against a folder with no vLLM in it, so nothing of a real service is at stake)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- name: Layout on a box without the service
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Change the layout
      ansible.builtin.include_role:
        name: vllm_server
        tasks_from: layout
      vars:
        vllm_server_base_dir: {base}
        vllm_server_venv: {base}/venv
        vllm_server_tensor_parallel_size: 2
"""


def test_layout_refuses_a_box_without_the_installed_service(tmp_path: Path) -> None:
    base = tmp_path / "base"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(base=base))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "layout entry point changes an installed service" in out, out
    assert f"{base}/venv/bin/python" in out and "run the role's main entry point" in out, out
    assert "Nothing was changed" in out, out
    # Refused before anything was written: not even the base folder exists.
    assert not base.exists()
