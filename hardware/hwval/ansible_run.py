"""Runs the project's playbooks on the GPU host itself (`ansible-playbook -c local`)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

INVENTORY = Path("hardware/inventory/hosts.yml")
HOST = "gpu-validation"


@dataclass(frozen=True)
class PlaybookRun:
    command: list[str]
    exit_code: int | None
    log: str


def playbook_command(python: str, site: Path | None, repo: Path, playbook: Path, extra_vars_file: Path) -> list[str]:
    script = site / "bin" / "ansible-playbook" if site is not None else None
    entry = [python, str(script)] if script is not None and script.is_file() else [python, "-m", "ansible.cli.playbook"]
    return [*entry, "-i", str(repo / INVENTORY), "-c", "local", str(repo / playbook), "-e", f"@{extra_vars_file}"]


def ansible_env(base: dict[str, str], repo: Path, root: Path) -> dict[str, str]:
    env = dict(base)
    env.update({
        "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(repo / "roles"),
        "ANSIBLE_HOME": str(root / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(root / "ansible" / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(root / "ansible" / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    return env


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def run_playbook(python: str, site: Path | None, repo: Path, *, root: Path, playbook: Path,
                 extra_vars: dict[str, object], log_path: Path, env: dict[str, str], timeout: float) -> PlaybookRun:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    vars_file = log_path.with_suffix(".vars.json")
    vars_file.write_text(json.dumps(extra_vars, indent=2) + "\n")
    command = playbook_command(python, site, repo, playbook, vars_file)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=ansible_env(env, repo, root),
                              cwd=str(repo), timeout=timeout, check=False)
        code: int | None = done.returncode
        text = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        text = f"{_text(exc.stdout)}{_text(exc.stderr)}\n[hwval] killed after {timeout:.0f} s"
    log_path.write_text(text)
    return PlaybookRun(command, code, text[-3000:])
