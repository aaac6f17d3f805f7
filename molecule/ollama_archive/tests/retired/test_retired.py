"""After the stage: one verified archive holds everything, Ollama is retired, nothing was removed."""

from __future__ import annotations

import hashlib
import json

from conftest import EPHEMERAL, FRONTEND, HOST, INSTANCES, KEY, PORTS, run_json, snapshot


def test_exactly_one_complete_archive(host, archive):
    assert len(host.run("ls -1 /var/backups/ollama-archive").stdout.split()) == 1
    assert host.file(archive).mode == 0o700
    sidecar = host.file(f"{archive}/MANIFEST.json.sha256").content_string.split()[0]
    assert sidecar == host.file(f"{archive}/MANIFEST.json").sha256sum


def test_manifest_records_every_instance_with_its_effective_environment(manifest):
    assert manifest["schema_version"] == 1
    by_unit = {i["unit"]: i for i in manifest["instances"]}
    assert sorted(by_unit) == sorted([*INSTANCES, "ollama.service"])
    for n, unit in enumerate(INSTANCES):
        inst = by_unit[unit]
        assert inst["kind"] == "template-instance"
        assert inst["state"]["active"] == "active" and inst["state"]["enabled"] == "enabled"
        assert inst["environment"]["CUDA_VISIBLE_DEVICES"] == str(n)
        assert inst["environment"]["OLLAMA_HOST"] == f"127.0.0.1:{PORTS[n]}"
        # The template-wide drop-in reaches every instance.
        assert inst["environment"]["OLLAMA_KEEP_ALIVE"] == "10m"
        assert inst["gpus"] == str(n)
        assert inst["api"]["version"] == "0.33.0"
        assert inst["mask"] == "persistent"
        assert "/etc/systemd/system/ollama@.service.d/override.conf" in inst["unit_files"]
    assert by_unit["ollama@3.service"]["models_dir"] == "/srv/ollama/models-gpu3"
    assert by_unit["ollama@0.service"]["models_dir"] == "/usr/share/ollama/.ollama/models"
    assert "Environment=\"OLLAMA_MODELS=/srv/ollama/models-gpu3\"" in \
        by_unit["ollama@3.service"]["unit_files"]["/etc/systemd/system/ollama@3.service.d/models.conf"]
    plain = by_unit["ollama.service"]
    assert plain["kind"] == "plain"
    assert plain["state"]["active"] == "inactive" and plain["state"]["enabled"] == "disabled"
    assert plain["mask"] == "drop-in"
    assert manifest["binary"]["path"] == "/usr/local/bin/ollama"
    assert manifest["binary"]["version"] == "0.33.0"
    assert manifest["blob_mode"] == "in_place"


def test_models_in_the_manifest_carry_the_digests_api_tags_served(manifest, before):
    recorded = {(s["path"], m["name"]): m["digest"] for s in manifest["stores"] for m in s["models"]}
    assert recorded[("/srv/ollama/models-gpu3", "hf.co/acme/tiny-gguf:Q4_K_M")] == \
        before["tags"]["11438"]["hf.co/acme/tiny-gguf:Q4_K_M"]["digest"]
    for port in ("11435", "11436", "11437"):
        for name, tag in before["tags"][port].items():
            assert recorded[("/usr/share/ollama/.ollama/models", name)] == tag["digest"]
    assert all(not s["problems"] for s in manifest["stores"])


def test_every_archived_file_is_in_the_tarball_with_its_checksum(host, archive, manifest, before):
    facts = run_json(host, f"/usr/local/lib/ollama-archive-test/archive_facts.py {archive}")
    kinds = {f["kind"] for f in manifest["files"]}
    assert {"unit", "drop-in", "environment", "haproxy", "key", "manifest", "result"} <= kinds
    for entry in manifest["files"]:
        sha, mtime, mode, owner = facts["members"][entry["member"]]
        assert sha == entry["sha256"], entry["path"]
        assert mtime == entry["mtime_ns"] // 1_000_000_000
        assert f"{mode:04o}" == entry["mode"] and owner == entry["owner"]
        if entry["kind"] == "haproxy":
            assert sha == before["haproxy_sha256"]  # the admin's original, not the retired config
        else:
            assert facts["disk"][entry["path"]] == sha, entry["path"]  # left in place, untouched
    assert facts["payload"] == {p["path"]: p["sha256"] for p in manifest["payload"]}


def unit_states(host, units: list[str]) -> list[list[str]]:
    script = "; ".join(f"echo $(systemctl is-enabled {u}) $(systemctl is-active {u})" for u in units)
    return [line.split() for line in host.run(script).stdout.splitlines()]


def test_units_are_stopped_disabled_and_masked(host):
    assert unit_states(host, INSTANCES) == [["masked", "inactive"]] * 4
    # Its own file lives in /etc/systemd/system, which systemctl refuses to mask: disabled, and a drop-in
    # refuses starts.
    assert unit_states(host, ["ollama.service"]) == [["disabled", "inactive"]]
    refused = host.run("systemctl start ollama.service")
    assert refused.rc != 0 and "refused" in refused.stderr.lower()
    assert host.run("systemctl is-active ollama.service").stdout.strip() == "inactive"
    assert host.file("/etc/systemd/system/ollama.service").is_file
    assert host.file("/etc/systemd/system/ollama@.service").is_file


def test_instance_ports_are_closed(host):
    for port in PORTS:
        assert not host.socket(f"tcp://127.0.0.1:{port}").is_listening


def test_haproxy_has_no_ollama_backend_and_points_students_to_the_successor(host):
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "Written by the gateway role" in config
    assert all(f":{port}" not in config for port in PORTS)
    assert "listen stats" in config  # the admin's other sections stay
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    assert host.service("haproxy").is_running
    answer = host.run(f"curl -s -w '\\n%{{http_code}}' {FRONTEND}/api/tags").stdout.splitlines()
    assert answer[-1] == "410"
    error = json.loads(answer[0])["error"]
    assert "Ollama was retired on this box" in error and "/v1" in error and "classroom-tiny" in error
    models = host.run(f"curl -s -H 'Authorization: Bearer {KEY}' {FRONTEND}/v1/models").stdout
    assert json.loads(models)["data"][0]["id"] == "classroom-tiny"


def test_blobs_and_manifests_are_untouched(host, before):
    now = snapshot(host, "snapshot-retired")
    assert now["files"] == before["files"]


def test_report_and_before_measurement(host, archive, manifest):
    report = host.file(f"{archive}/OLLAMA_TEST_REPORT.md").content_string
    assert "## Instances" in report and "`ollama@3.service`" in report
    assert "/srv/ollama/models-gpu3" in report
    assert "Verdict: **PASS**" in report
    assert manifest["measure"]["status"] == "pass"
    probe = json.loads(host.file(f"{manifest['measure']['remote_report_dir']}/report.json").content_string)
    assert probe["config"]["api"] == "ollama" and probe["config"]["base_url"] == FRONTEND
    assert probe["verdict"]["status"] == "pass"
    fetched = EPHEMERAL / "ollama-testing" / HOST
    for name in ("OLLAMA_TEST_REPORT.md", "MANIFEST.json"):
        local = hashlib.sha256((fetched / name).read_bytes()).hexdigest()
        assert local == host.file(f"{archive}/{name}").sha256sum
