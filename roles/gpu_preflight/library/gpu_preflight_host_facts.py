#!/usr/bin/python
"""Ansible module: read-only host facts the preflight needs (Python, disk, port, GPU process users, nofile)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_preflight_host_facts
short_description: Gather Python version, free disk, port listeners, GPU process users and the nofile limit (read-only)
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
  gpu_pids:
    description: PIDs nvidia-smi lists as GPU compute apps; their owning user is reported.
    type: list
    elements: int
    default: []
author: Classroom Cluster
"""

RETURN = r"""
host_facts:
  description: >-
    python, disk, port (listening, owners, processes with pid/name/user, socket_users), nofile, and
    gpu_processes (pid and user of each PID in gpu_pids).
  returned: always
  type: dict
"""

import os
import pwd
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


def listening_sockets(port: int) -> dict[str, int]:
    """Inode -> uid of every socket listening on the port.

    The uid column of /proc/net/tcp is readable by anyone, so the listener's user is known
    even when its process is not (another user's process without root).
    """
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                sockets[cols[9]] = int(cols[7])
    return sockets


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (a container's uid, for one): the number still identifies it
        return str(uid)


def process_user(pid: int) -> str | None:
    """Effective user of a process from /proc/<pid>/status (world-readable); None when gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            # Uid: real effective saved fs; ps shows the effective one.
            return user_name(int(line.split()[2]))
    return None


def process_name(proc: Path) -> str | None:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return None


def socket_owners(inodes: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Processes holding those sockets, and the processes whose descriptors could not be read.

    Reading another user's descriptors needs root (and CAP_SYS_PTRACE); the unreadable ones
    are kept so that a listener can still be named by its socket's user.
    """
    wanted = {f"socket:[{inode}]" for inode in inodes}
    owners, unreadable = [], []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        pid = int(proc.name)
        try:
            fds = list((proc / "fd").iterdir())
        except PermissionError:
            unreadable.append({"pid": pid, "name": process_name(proc), "user": process_user(pid)})
            continue
        except OSError:  # gone since the listing
            continue
        if _links(fds) & wanted:
            owners.append({"pid": pid, "name": process_name(proc), "user": process_user(pid)})
    return sorted(owners, key=lambda owner: owner["pid"]), sorted(unreadable, key=lambda proc: proc["pid"])


def owner_label(owner: dict[str, Any]) -> str:
    name = owner["name"] or "process"
    user = f", user {owner['user']}" if owner["user"] else ""
    return f"{name} (pid {owner['pid']}{user})"


def port_facts(port: int) -> dict[str, Any]:
    sockets = listening_sockets(port)
    processes, unreadable = socket_owners(set(sockets)) if sockets else ([], [])
    socket_users = sorted({user_name(uid) for uid in sockets.values()})
    return {
        "port": port,
        "listening": bool(sockets),
        "owners": [owner_label(owner) for owner in processes],
        "processes": processes,
        "socket_users": socket_users,
        # Only when no holder was readable: the socket users' processes that may hold it.
        "unreadable_candidates": [] if processes else [p for p in unreadable if p["user"] in socket_users][:8],
    }


def gpu_process_users(pids: list[int]) -> list[dict[str, Any]]:
    return [{"pid": pid, "user": process_user(pid)} for pid in sorted(set(pids))]


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
            "gpu_pids": {"type": "list", "elements": "int", "default": []},
        },
        supports_check_mode=True,
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    facts = {
        "python": python_facts(module, module.params["python_executable"]),
        "disk": disk_facts(module.params["disk_path"]),
        "port": port_facts(module.params["port"]),
        "gpu_processes": gpu_process_users(module.params["gpu_pids"]),
        "nofile": {
            "soft": None if soft == resource.RLIM_INFINITY else soft,
            "hard": None if hard == resource.RLIM_INFINITY else hard,
        },
    }
    module.exit_json(changed=False, host_facts=facts)


if __name__ == "__main__":
    main()
