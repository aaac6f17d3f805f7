"""The units step of retire and restore against a scripted systemctl: few calls, only where needed."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ollama_archive_systemd
import pytest

from tests.ollama_archive.archive_helpers import run_module

FAKE = """#!/bin/sh
# Scripted systemctl: `show` prints the states in $STATES, every other call is logged.
if [ "$1" = show ]; then cat "$STATES"; exit 0; fi
echo "$*" >> "$CALLS"
"""


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE)
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("STATES", str(tmp_path / "states"))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.setattr(ollama_archive_systemd, "SYSTEMD_DIR", tmp_path / "systemd")

    def states(**units: tuple[str, str, str]) -> None:
        blocks = [f"Id={name.replace('_', '@', 1)}.service\nLoadState={load}\nActiveState={active}\n"
                  f"UnitFileState={enabled}" for name, (load, active, enabled) in units.items()]
        (tmp_path / "states").write_text("\n\n".join(blocks) + "\n")

    def calls() -> list[str]:
        path = tmp_path / "calls"
        return path.read_text().splitlines() if path.exists() else []

    return states, calls, tmp_path / "systemd"


def units(url: str = "http://127.0.0.1:9") -> list[dict]:
    return [
        {"unit": "ollama@0.service", "mask": "persistent", "state": {"enabled": "enabled", "active": "active"},
         "url": url, "port": int(url.rsplit(":", 1)[1])},
        {"unit": "ollama.service", "mask": "drop-in", "state": {"enabled": "disabled", "active": "inactive"},
         "url": "http://127.0.0.1:11434", "port": 11434},
    ]


def retire(check: bool = False) -> dict:
    return run_module(ollama_archive_systemd, {"action": "retire", "units": units(), "retired_dropin": "99-r.conf",
                                               "retired_text": "[Unit]\nRefuseManualStart=yes\n", "timeout": 5},
                      check=check)


def test_retire_stops_disables_and_masks_in_one_call_each(systemctl):
    states, calls, systemd = systemctl
    states(ollama_0=("loaded", "active", "enabled"), ollama=("loaded", "inactive", "disabled"))
    result = retire()
    assert result["changed"]
    assert calls() == ["stop -- ollama@0.service", "disable -- ollama@0.service", "mask -- ollama@0.service",
                       "daemon-reload"]
    assert (systemd / "ollama.service.d/99-r.conf").read_text() == "[Unit]\nRefuseManualStart=yes\n"
    assert result["systemd"]["waited"] == ["127.0.0.1:9"]


def test_a_retired_box_is_left_alone(systemctl):
    states, calls, systemd = systemctl
    states(ollama_0=("masked", "inactive", "masked"), ollama=("loaded", "inactive", "disabled"))
    (systemd / "ollama.service.d").mkdir(parents=True)
    (systemd / "ollama.service.d/99-r.conf").write_text("[Unit]\nRefuseManualStart=yes\n")
    result = retire()
    assert result["changed"] is False and calls() == []


def test_check_mode_says_what_it_would_do_and_does_nothing(systemctl):
    states, calls, systemd = systemctl
    states(ollama_0=("loaded", "active", "enabled"), ollama=("loaded", "inactive", "disabled"))
    result = retire(check=True)
    assert result["changed"] and result["systemd"]["masked"] == ["ollama@0.service"]
    assert calls() == [] and not systemd.exists()


class Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"version": "0.33.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_restore_writes_noprune_first_then_unmasks_enables_starts_and_waits(systemctl):
    states, calls, systemd = systemctl
    states(ollama_0=("masked", "inactive", "masked"), ollama=("loaded", "inactive", "disabled"))
    (systemd / "ollama.service.d").mkdir(parents=True)
    (systemd / "ollama.service.d/99-r.conf").write_text("x")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Version)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_module(ollama_archive_systemd, {
            "action": "restore", "units": units(f"http://127.0.0.1:{server.server_address[1]}"),
            "retired_dropin": "99-r.conf", "noprune_dropin": "90-n.conf",
            "noprune_text": "[Service]\nEnvironment=OLLAMA_NOPRUNE=1\n", "timeout": 10})
    finally:
        server.shutdown()
    assert calls() == ["daemon-reload", "unmask -- ollama@0.service", "enable -- ollama@0.service",
                       "start -- ollama@0.service"]
    assert not (systemd / "ollama.service.d/99-r.conf").exists()
    for unit in ("ollama@0.service", "ollama.service"):
        assert "OLLAMA_NOPRUNE=1" in (systemd / f"{unit}.d/90-n.conf").read_text()
    assert result["systemd"]["started"] == ["ollama@0.service"]


def test_restore_names_an_instance_that_never_answers(systemctl):
    states, _, _ = systemctl
    states(ollama_0=("loaded", "inactive", "enabled"), ollama=("loaded", "inactive", "disabled"))
    result = run_module(ollama_archive_systemd, {"action": "restore", "units": units(), "retired_dropin": "99-r.conf",
                                                 "timeout": 1})
    assert result["failed"] and "No answer on /api/version within 1 s from http://127.0.0.1:9" in result["msg"]


# The drain: retire waits for clients connected to the running instances' ports (HAProxy's old worker finishing
# the requests it had sent) before it stops them.

# Synthetic /proc/net/tcp lines (the kernel's format): a listener on 11434 (0A), a client connection to it
# (01, the server's side), the client's own side (local port 40000 -> 11434) and a closing one (06).
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0
   1: 0100007F:2CAA 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   999        0 2 1 0 20 4 30 10 -1
   2: 0100007F:9C40 0100007F:2CAA 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:2CAA 0100007F:9C41 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0
"""


def test_established_counts_only_clients_connected_to_the_port(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(PROC_NET_TCP)
    assert ollama_archive_systemd.established_on(11434, (str(table),)) == 1
    assert ollama_archive_systemd.established_on(40000, (str(table),)) == 1
    assert ollama_archive_systemd.established_on(8000, (str(table), str(tmp_path / "missing"))) == 0


def retire_with_a_client(systemctl, hold_s: float, drain_timeout: int) -> tuple[dict, list[str]]:
    """An instance with one connected client that hangs up after hold_s; the listener closes once the stop is logged."""
    states, calls, _ = systemctl
    states(ollama_0=("loaded", "active", "enabled"), ollama=("loaded", "inactive", "disabled"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()

    def hang_up_then_close() -> None:
        time.sleep(hold_s)
        client.close()
        served.close()
        deadline = time.monotonic() + 10
        while not calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        listener.close()

    thread = threading.Thread(target=hang_up_then_close, daemon=True)
    thread.start()
    result = run_module(ollama_archive_systemd, {
        "action": "retire", "units": units(f"http://127.0.0.1:{port}"), "retired_dropin": "99-r.conf",
        "drain_timeout": drain_timeout, "timeout": 5})
    thread.join(timeout=15)
    return result, calls()


def test_retire_stops_only_once_the_connected_client_is_done(systemctl):
    result, calls = retire_with_a_client(systemctl, hold_s=1.0, drain_timeout=10)
    assert not result.get("failed"), result
    assert 0.9 <= result["systemd"]["drained_s"] < 10
    assert result["systemd"]["cut_off"] == []
    assert calls[0] == "stop -- ollama@0.service"


def test_a_drain_that_times_out_names_what_the_stop_cut_off(systemctl):
    result, calls = retire_with_a_client(systemctl, hold_s=3.0, drain_timeout=1)
    assert not result.get("failed"), result
    assert result["systemd"]["cut_off"] and result["systemd"]["cut_off"][0].startswith("127.0.0.1:")
    assert calls[0] == "stop -- ollama@0.service"
