#!/usr/bin/python
"""Ansible module: read-only host facts the preflight needs (Python, disk, port, nofile)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_preflight_host_facts
short_description: Gather Python version, free disk, port listeners and the nofile limit (read-only)
options:
  python_executable:
    description: Interpreter the vLLM virtual environment will be built with.
    type: str
    default: python3
  disk_path:
    description: Path whose file system must hold the venv and the model (need not exist yet).
    type: str
    required: true
  port:
    description: TCP port the service will listen on.
    type: int
    required: true
author: Classroom Cluster
"""

RETURN = r"""
host_facts:
  description: python, disk, port and nofile facts.
  returned: always
  type: dict
"""

import os
import resource
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

_LISTEN = "0A"


def python_facts(module: AnsibleModule, executable: str) -> dict[str, Any]:
    path = executable if os.path.isabs(executable) else module.get_bin_path(executable)
    if not path:
        return {"executable": executable, "version": None, "error": "not found on PATH"}
    rc, out, err = module.run_command([path, "-c", "import platform; print(platform.python_version())"])
    if rc != 0:
        return {"executable": path, "version": None, "error": (err or out).strip()[:200]}
    return {"executable": path, "version": out.strip(), "error": ""}


def disk_facts(path: str) -> dict[str, Any]:
    # The venv does not exist before the install: measure the nearest existing parent.
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    stats = os.statvfs(probe)
    return {"path": path, "checked_at": str(probe), "free_bytes": stats.f_bavail * stats.f_frsize}


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def socket_owners(inodes: set[str]) -> list[str]:
    """Process names holding those sockets (needs root for other users' processes)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    owners = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:  # gone, or another user's process without root
            continue
        if _links(fds) & wanted:
            try:
                owners.add(f"{(proc / 'comm').read_text().strip()} (pid {proc.name})")
            except OSError:
                owners.add(f"pid {proc.name}")
    return sorted(owners)


def _links(fds: list[Path]) -> set[str]:
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:  # closed since the listing (the listing's own descriptor, for one)
            continue
    return links


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "python_executable": {"type": "str", "default": "python3"},
            "disk_path": {"type": "str", "required": True},
            "port": {"type": "int", "required": True},
        },
        supports_check_mode=True,
    )
    inodes = listening_inodes(module.params["port"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    facts = {
        "python": python_facts(module, module.params["python_executable"]),
        "disk": disk_facts(module.params["disk_path"]),
        "port": {
            "port": module.params["port"],
            "listening": bool(inodes),
            "owners": socket_owners(inodes) if inodes else [],
        },
        "nofile": {
            "soft": None if soft == resource.RLIM_INFINITY else soft,
            "hard": None if hard == resource.RLIM_INFINITY else hard,
        },
    }
    module.exit_json(changed=False, host_facts=facts)


if __name__ == "__main__":
    main()
