"""Values given with -e are strings: every role's checks judge them as numbers, naming the variable.

Each case runs ansible-playbook with -e against localhost: the role's argument spec (what Ansible
checks when the role is applied) and then its tasks/validate.yml. Nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLAY = textwrap.dedent(
    """\
    - name: Validate {role} with command-line values
      hosts: localhost
      gather_facts: false
      vars_files: ["{root}/roles/{role}/defaults/main.yml"]
      vars:
        # Some defaults point into the role, as they would when the role is applied.
        role_path: "{root}/roles/{role}"
      tasks:
        - name: The role's argument spec
          ansible.builtin.validate_argument_spec:
            argument_spec: "{{{{ (lookup('ansible.builtin.file', '{root}/roles/{role}/meta/argument_specs.yml')
                                 | from_yaml).argument_specs.main.options }}}}"
        - name: The role's own checks
          ansible.builtin.include_role:
            name: {role}
            tasks_from: validate
    """
)

CASES = [
    # role, -e assignment, expected: None = accepted, else a text of the failure
    ("vllm_server", "vllm_server_tensor_parallel_size=3", None),
    ("vllm_server", "vllm_server_port=8001", None),
    ("vllm_server", "vllm_server_port=70000", "vllm_server_port is 70000; it must be at least 1 and at most 65535"),
    (
        "vllm_server",
        "vllm_server_gpu_memory_utilization=1.5",
        "vllm_server_gpu_memory_utilization is 1.5; it must be more than 0 and at most 1",
    ),
    ("vllm_server", "vllm_server_max_model_len=abc", "vllm_server_max_model_len"),
    ("gpu_preflight", "gpu_preflight_tensor_parallel_size=4", None),
    ("gpu_preflight", "gpu_preflight_students=0", "gpu_preflight_students is 0; it must be at least 1"),
    (
        "gpu_preflight",
        "gpu_preflight_gpu_memory_utilization=1.5",
        "gpu_preflight_gpu_memory_utilization is 1.5; it must be more than 0 and at most 1",
    ),
]


@pytest.mark.parametrize(("role", "assignment", "expected"), CASES, ids=[c[1] for c in CASES])
def test_command_line_value(tmp_path, role, assignment, expected):
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=role, root=ROOT))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(play), "-e", assignment],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    out = done.stdout + done.stderr
    if expected is None:
        assert done.returncode == 0, out
    else:
        assert done.returncode != 0, out
        assert expected in out, out
        assert "Traceback" not in out
