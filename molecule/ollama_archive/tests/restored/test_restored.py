"""After playbooks/rollback.yml: Ollama runs as before, byte for byte, behind the same HAProxy config."""

from __future__ import annotations

import json

from conftest import EPHEMERAL, FRONTEND, HOST, INSTANCES, snapshot

ORPHAN = "/usr/share/ollama/.ollama/models/blobs/sha256-" + "a" * 64
PARTIAL = "/usr/share/ollama/.ollama/models/blobs/sha256-" + "b" * 64 + "-partial"


def test_instances_run_and_are_enabled_as_before(host):
    script = "; ".join(f"echo $(systemctl is-enabled {u}) $(systemctl is-active {u})"
                       for u in [*INSTANCES, "ollama.service"])
    states = [line.split() for line in host.run(script).stdout.splitlines()]
    # The install script's unit was disabled and stopped before, and is again; its retirement drop-in is gone.
    assert states == [["enabled", "active"]] * 4 + [["disabled", "inactive"]]
    assert not host.file("/etc/systemd/system/ollama.service.d/99-ollama-archive-retired.conf").exists


def test_restored_instances_do_not_prune(host):
    envs = host.run(f"systemctl show -p Environment --value {' '.join(INSTANCES)}").stdout.splitlines()
    assert len([e for e in envs if "OLLAMA_NOPRUNE=1" in e]) == 4
    # An old unreferenced blob and a partial download left during retirement survived the start.
    assert host.file(ORPHAN).exists
    assert host.file(PARTIAL).exists


def test_haproxy_config_is_byte_identical_and_serves_ollama(host, before):
    assert host.file("/etc/haproxy/haproxy.cfg").sha256sum == before["haproxy_sha256"]
    assert host.service("haproxy").is_running
    tags = json.loads(host.run(f"curl -sf {FRONTEND}/api/tags").stdout)
    assert "classroom-tiny:latest" in {m["name"] for m in tags["models"]}


def test_every_blob_and_manifest_is_byte_identical_with_its_mtime(host, before):
    now = snapshot(host, "snapshot-restored", api=True)
    assert {k: now["files"][k] for k in before["files"]} == before["files"]
    assert set(now["files"]) - set(before["files"]) == {ORPHAN, PARTIAL}
    # /api/tags: same digests (sha256 of the manifests' bytes) and modified_at (their mtimes).
    assert now["tags"] == before["tags"]


def test_successor_is_stopped_and_disabled_but_kept(host):
    assert host.run("systemctl is-active vllm.service").stdout.strip() == "inactive"
    assert host.run("systemctl is-enabled vllm.service").stdout.strip() == "disabled"
    assert host.file("/etc/systemd/system/vllm.service").is_file


def test_the_gate_report_was_fetched(host):
    reports = sorted((EPHEMERAL / "reports" / HOST).glob("*/report.json"))
    gate = json.loads(reports[-1].read_text())
    assert gate["config"]["api"] == "ollama" and gate["config"]["base_url"] == FRONTEND
    assert gate["verdict"]["status"] == "pass"
