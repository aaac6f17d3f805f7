"""Host facts read from /proc and the file system: disk, listening ports and their owners."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import gpu_preflight_host_facts as host_facts


def test_disk_facts_measure_the_nearest_existing_parent(tmp_path):
    facts = host_facts.disk_facts(str(tmp_path / "not" / "yet" / "venv"))
    assert facts["checked_at"] == str(tmp_path)
    assert facts["free_bytes"] > 0


def test_a_listening_port_is_found_with_its_owner():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        inodes = host_facts.listening_inodes(port)
        assert inodes
        owners = host_facts.socket_owners(inodes)
        assert f"(pid {os.getpid()})" in " ".join(owners)
        assert Path("/proc/self/comm").read_text().strip() in " ".join(owners)


def test_a_closed_port_is_free():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert host_facts.listening_inodes(port) == set()
