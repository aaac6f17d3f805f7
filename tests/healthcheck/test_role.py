"""playbooks/healthcheck.yml on the controller in check mode (connection local): a box the gate has not set up
yet gets a dry run that fails nothing and says what a run would do; bad settings fail naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def _play(tmp: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    inventory = tmp / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"classroom_boxes": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    settings = {"healthcheck_dir": str(tmp / "hc"), "healthcheck_probe_python": str(tmp / "absent" / "python"),
                "healthcheck_run_file": str(tmp / "absent" / "run.json"), **extra}
    return subprocess.run(
        [str(PLAYBOOK), "--check", "-i", str(inventory), str(ROOT / "playbooks" / "healthcheck.yml"),
         "-e", json.dumps(settings)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env={"PATH": str(PLAYBOOK.parent) + ":/usr/bin:/bin", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_FORCE_COLOR": "0", "HOME": str(tmp)})


def test_a_dry_run_on_a_box_without_the_probe_says_what_it_would_do(tmp_path: Path) -> None:
    proc = _play(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Check mode:" in proc.stdout and "missing (the gate installs them)" in proc.stdout
    assert "check mode never loads a live service" in proc.stdout
    assert not (tmp_path / "hc").exists()


def test_bad_settings_fail_naming_the_variable(tmp_path: Path) -> None:
    proc = _play(tmp_path, healthcheck_time="25:00")
    assert proc.returncode != 0
    assert "healthcheck_time HH:MM" in proc.stdout and "Traceback" not in proc.stdout
    proc = _play(tmp_path, healthcheck_duration="abc")
    assert proc.returncode != 0 and "healthcheck_duration" in proc.stdout
