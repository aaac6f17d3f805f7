"""Host facts read from /proc and the file system: disk, listening ports and their owners."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import gpu_preflight_host_facts as host_facts


def test_disk_facts_measure_the_nearest_existing_parent(tmp_path):
    facts = host_facts.disk_facts(str(tmp_path / "not" / "yet" / "venv"))
    assert facts["checked_at"] == str(tmp_path)
    assert facts["free_bytes"] > 0


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def test_a_listening_port_is_found_with_its_owner_and_user():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        facts = host_facts.port_facts(port)
    assert facts["listening"] is True
    assert facts["socket_users"] == [me()]
    mine = [proc for proc in facts["processes"] if proc["pid"] == os.getpid()]
    assert mine == [{"pid": os.getpid(), "name": Path("/proc/self/comm").read_text().strip(), "user": me()}]
    assert f"(pid {os.getpid()}, user {me()})" in " ".join(facts["owners"])
    assert facts["unreadable_candidates"] == []


def test_a_closed_port_is_free():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert host_facts.listening_sockets(port) == {}
    assert host_facts.port_facts(port) == {
        "port": port,
        "listening": False,
        "owners": [],
        "processes": [],
        "socket_users": [],
        "unreadable_candidates": [],
    }


def test_gpu_pids_get_their_owning_user():
    gone = 2**22 + 1  # above the kernel's pid_max limit: never a live process
    users = host_facts.gpu_process_users([os.getpid(), gone, os.getpid()])
    assert users == [{"pid": os.getpid(), "user": me()}, {"pid": gone, "user": None}]


def test_a_uid_without_a_passwd_entry_is_reported_as_the_number():
    unused = next(uid for uid in range(60000, 65000) if uid not in {entry.pw_uid for entry in pwd.getpwall()})
    assert host_facts.user_name(unused) == str(unused)
