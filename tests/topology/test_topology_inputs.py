"""The role's input checks and candidate list, run by ansible-playbook on the controller (no box needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- name: Candidates
  hosts: localhost
  gather_facts: false
  vars:
    vllm_server_tensor_parallel_size: {tp}
    vllm_server_extra_env: {{A: "1"}}
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: topology
        tasks_from: validate
    - name: Candidates
      ansible.builtin.include_role:
        name: topology
        tasks_from: candidates
    - name: Show
      ansible.builtin.debug:
        msg: "CANDIDATES={{{{ __topology_candidates | map(attribute='name') | list | to_json }}}}"
"""


def _play(tmp_path: Path, tp: int, *extra: str) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(tp=tp))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    playbook = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(playbook), "-i", "localhost,", "-c", "local", str(play), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    ("tp", "expected"),
    [(4, ["TP=2 x DP=2", "DP=4", "PP=4", "TP=4"]), (2, ["DP=2", "PP=2", "TP=2"]), (1, ["TP=1"])],
)
def test_candidates_follow_the_gpu_count_with_the_inventory_layout_last(
    tmp_path: Path, tp: int, expected: list[str]
) -> None:
    run = _play(tmp_path, tp)
    assert run.returncode == 0, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if "CANDIDATES=" in line)
    assert json.loads(line.split("CANDIDATES=", 1)[1].strip().strip("'\"")) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-e", "topology_ramp_step=abc"], "topology_ramp_step is abc; it must be a whole number"),
        (["-e", "topology_ramp_start=9", "-e", "topology_ramp_max=4"], "topology_ramp_max (4) is below"),
        (["-e", '{"topology_layouts": [{"name": "x", "tensor_parallel_size": "a"}]}'], "is not a layout"),
        (["-e", '{"topology_layouts": [{"name": "x"}, {"name": "x"}]}'], "two layouts of one name"),
    ],
)
def test_bad_input_names_the_variable(tmp_path: Path, extra: list[str], message: str) -> None:
    run = _play(tmp_path, 2, *extra)
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
