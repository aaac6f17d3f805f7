"""The lab vLLM service as an admin and a student would meet it: files, unit, HTTP, TP workers, recovery."""

from __future__ import annotations

import json
import shlex
import time

import pytest

SERVICE = "vllm.service"
BASE = "http://127.0.0.1:8000"
KEY = "molecule-lab-key-not-secret"
CONFIG = "/etc/vllm/vllm.yaml"
ENV_FILE = "/etc/vllm/vllm.env"
UNIT = "/etc/systemd/system/vllm.service"
# A TP=2 start takes about 75 s alone on two cores and several minutes when the machine is shared:
# the bound on "healthy again" is loose. The part the unit controls, how soon systemd starts a new
# server, is bounded tightly: with the default unit it waited the 90 s stop timeout for the killed
# server's leftovers; now TimeoutStopSec=20 + RestartSec=5 at most.
RECOVERY_LIMIT_S = 900
RESTART_LIMIT_S = 40


def curl_status(host, path: str, key: str | None = None) -> str:
    auth = f"-H {shlex.quote('Authorization: Bearer ' + key)} " if key else ""
    return host.run(f"curl -s -o /dev/null -w '%{{http_code}}' {auth}{BASE}{path}").stdout.strip()


def journal(host) -> str:
    return host.run(f"journalctl -u {SERVICE} -n 40 --no-pager -o cat").stdout


def main_pid(host) -> str:
    return host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()


def test_service_user_is_a_nologin_system_user(host):
    user = host.user("vllm")
    assert user.exists
    assert user.group == "vllm"
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    assert user.home == "/var/lib/vllm"


@pytest.mark.parametrize("path", [CONFIG, ENV_FILE])
def test_config_and_secret_files_are_root_owned_and_group_readable(host, path):
    f = host.file(path)
    assert f.is_file
    assert f.user == "root"
    assert f.group == "vllm"
    assert f.mode == 0o640


def test_api_key_only_in_the_environment_file(host):
    assert f"VLLM_API_KEY={KEY}" in host.file(ENV_FILE).content_string
    assert KEY not in host.file(CONFIG).content_string
    assert KEY not in host.file(UNIT).content_string
    assert KEY not in host.run(f"systemctl show {SERVICE}").stdout
    assert KEY not in host.run("ps -eo args").stdout


def test_config_renders_only_meant_options(host):
    text = host.file(CONFIG).content_string
    assert text.startswith("#")
    assert "tensor-parallel-size: 2" in text
    assert "enforce-eager: true" in text
    assert "load-format: dummy" in text
    assert ": false" not in text


def test_state_dirs_are_writable_by_the_service_user(host):
    for sub in ("", "/hf", "/cache", "/config"):
        d = host.file(f"/var/lib/vllm{sub}")
        assert d.is_directory
        assert d.user == "vllm"


def test_unit_enabled_active_and_hardened(host):
    svc = host.service("vllm")
    assert svc.is_enabled
    assert svc.is_running, journal(host)
    props = dict(
        line.split("=", 1)
        for line in host.run(
            f"systemctl show {SERVICE} -p Type -p Restart -p User -p KillMode -p LimitNOFILE -p NoNewPrivileges "
            "-p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateDevices -p ExecStart -p Environment"
        ).stdout.splitlines()
        if "=" in line
    )
    assert props["Type"] == "exec"
    assert props["Restart"] == "always"
    assert props["User"] == "vllm"
    assert props["KillMode"] == "mixed"
    assert props["LimitNOFILE"] == "65535"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["PrivateDevices"] == "no"
    assert (
        "/opt/vllm/venv/bin/python -m vllm.entrypoints.openai.api_server --config /etc/vllm/vllm.yaml"
        in (props["ExecStart"])
    )
    for var in ("HF_HUB_OFFLINE=1", "VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1", "VLLM_CACHE_ROOT=/var/lib/vllm/cache"):
        assert var in props["Environment"]


def test_port_bound_on_the_configured_address(host):
    assert host.socket("tcp://0.0.0.0:8000").is_listening


def test_health_is_open_without_key(host):
    assert curl_status(host, "/health") == "200"


def test_models_needs_the_key(host):
    assert curl_status(host, "/v1/models") == "401"
    assert curl_status(host, "/v1/models", key="wrong-key") == "401"
    assert curl_status(host, "/v1/models", key=KEY) == "200"


def test_models_lists_the_served_name(host):
    out = host.check_output(f"curl -sf -H 'Authorization: Bearer {KEY}' {BASE}/v1/models")
    assert [m["id"] for m in json.loads(out)["data"]] == ["classroom-tiny"]


def test_two_tensor_parallel_workers_run(host):
    names = host.run("ps -eo comm").stdout.split()
    workers = [n for n in names if n.startswith("VLLM::Worker_TP")]
    assert len(workers) == 2, names


def test_completion_returns_tokens(host):
    body = json.dumps({"model": "classroom-tiny", "prompt": "t1 t2 t3", "max_tokens": 8, "ignore_eos": True})
    out = host.check_output(
        f"curl -sf -H 'Authorization: Bearer {KEY}' -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {BASE}/v1/completions"
    )
    reply = json.loads(out)
    assert reply["usage"]["completion_tokens"] == 8
    assert reply["choices"][0]["text"].strip()


def test_killed_server_comes_back_healthy(host):
    before = main_pid(host)
    assert before not in {"", "0"}
    # Kill time and the new process's start both on the box's clock, so slow polling does not count.
    killed_at = float(host.check_output(f"cat /proc/uptime && kill -9 {before}").split()[0])
    start = time.monotonic()
    new_pid = None
    while time.monotonic() - start < RECOVERY_LIMIT_S:
        pid = main_pid(host)
        if pid not in {before, "0", ""}:
            new_pid = pid
            if curl_status(host, "/health") == "200":
                break
        time.sleep(1)
    healthy_after = time.monotonic() - start
    assert new_pid is not None, f"systemd did not start a new server within {RECOVERY_LIMIT_S} s\n{journal(host)}"
    assert curl_status(host, "/health") == "200", f"not healthy after {healthy_after:.0f} s\n{journal(host)}"
    started_us = int(host.check_output(f"systemctl show -p ExecMainStartTimestampMonotonic --value {SERVICE}"))
    restarted_after = started_us / 1e6 - killed_at
    figures = json.dumps({"new_main_pid_s": round(restarted_after, 1), "healthy_s": round(healthy_after, 1)})
    print(f"RECOVERY {figures}")
    # Left in the box for benchmarks/vllm_server/bench.py.
    host.run(f"echo {shlex.quote(figures)} > /var/tmp/vllm-recovery.json")
    assert restarted_after < RESTART_LIMIT_S, f"systemd took {restarted_after:.0f} s to start a new server"
    # The leftover workers of the killed server must be gone: exactly the new pair runs.
    names = host.run("ps -eo comm").stdout.split()
    assert len([n for n in names if n.startswith("VLLM::Worker_TP")]) == 2, names
