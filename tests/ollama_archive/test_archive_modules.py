"""The archive end to end on a box in a temporary folder: create, verify, corrupt, restore."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import ollama_archive_create
import ollama_archive_restore
import ollama_archive_verify
import pytest
from ansible.module_utils.ollama_archive_manifest import choose, list_archives

from tests.ollama_archive.archive_helpers import MTIME, make_box, run_module

STAMP = "20260101T000000Z"


@pytest.fixture
def box(tmp_path):
    return make_box(tmp_path)


def create(tmp_path, box, blob_mode="in_place", check=False, measure=None):
    return run_module(ollama_archive_create, {
        "root": str(tmp_path / "archives"), "stamp": STAMP, "host": "box", "discovery": box,
        "blob_mode": blob_mode, "measure": measure or {"status": "skipped", "reason": "turned off"}}, check=check)


def verify(tmp_path, name="", blob_check="size"):
    return run_module(ollama_archive_verify, {"root": str(tmp_path / "archives"), "name": name,
                                              "blob_check": blob_check})["verification"]


def test_check_mode_writes_nothing(tmp_path, box):
    result = create(tmp_path, box, check=True)
    assert result["changed"] is True
    assert result["archive"]["files"] == len(box["files"])
    assert not (tmp_path / "archives").exists()


def test_the_archive_holds_every_file_with_its_metadata_and_verifies(tmp_path, box):
    result = create(tmp_path, box)
    folder = Path(result["archive"]["path"])
    assert folder == tmp_path / "archives" / STAMP
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    manifest = json.loads((folder / "MANIFEST.json").read_bytes())
    assert (folder / "MANIFEST.json.sha256").read_text().split()[0] == \
        hashlib.sha256((folder / "MANIFEST.json").read_bytes()).hexdigest()
    kinds = sorted({f["kind"] for f in manifest["files"]})
    assert kinds == ["drop-in", "environment", "haproxy", "key", "manifest", "result", "unit"]
    key = next(f for f in manifest["files"] if f["kind"] == "key")
    assert key["mode"] == "0600" and key["mtime_ns"] == MTIME * 1_000_000_000
    with tarfile.open(folder / "configs.tar.gz") as tar:
        member = tar.getmember(key["member"])
        assert member.mode == 0o600 and int(member.mtime) == MTIME
    assert "STAND-IN KEY" not in (folder / "MANIFEST.json").read_text()
    assert {p["path"] for p in manifest["payload"]} == {"configs.tar.gz", "OLLAMA_TEST_REPORT.md"}
    report = (folder / "OLLAMA_TEST_REPORT.md").read_text()
    assert "Not measured: turned off." in report and "Not measured: nvidia-smi not found on this box." in report
    assert "| `classroom-tiny:latest` | 48.5 KiB | 1 | same | 1 | 48.5 KiB |" in report
    checked = verify(tmp_path)
    assert checked["found"] and checked["problems"] == []
    assert checked["checked_files"] == len(manifest["files"]) + len(manifest["payload"]) + 4  # + 4 blobs in place


def test_an_archive_is_never_overwritten(tmp_path, box):
    create(tmp_path, box)
    result = run_module(ollama_archive_create, {
        "root": str(tmp_path / "archives"), "stamp": STAMP, "host": "box", "discovery": box})
    assert result["failed"] and "never overwritten" in result["msg"]


def rewrite_member(tarball: Path, name: str) -> None:
    with tarfile.open(tarball) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(tarball, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            changed = data + b"#" if info.name == name else data
            info.size = len(changed)
            tar.addfile(info, io.BytesIO(changed))


def test_a_corrupted_archived_file_is_named(tmp_path, box):
    folder = Path(create(tmp_path, box)["archive"]["path"])
    unit = box["instances"][0]["fragment"].lstrip("/")
    rewrite_member(folder / "configs.tar.gz", unit)
    problems = verify(tmp_path)["problems"]
    assert any(p.startswith(f"{folder}/configs.tar.gz: sha256 is") for p in problems)
    assert any(f"member {unit} (/{unit}) has sha256" in p for p in problems)


def test_a_changed_manifest_json_is_refused(tmp_path, box):
    folder = Path(create(tmp_path, box)["archive"]["path"])
    (folder / "MANIFEST.json").write_text((folder / "MANIFEST.json").read_text().replace("box", "other", 1))
    (problem,) = verify(tmp_path)["problems"]
    assert "MANIFEST.json.sha256 records" in problem


def test_a_missing_in_place_blob_is_named(tmp_path, box):
    create(tmp_path, box)
    blob = next((tmp_path / "models" / "blobs").iterdir())
    blob.unlink()
    (problem,) = verify(tmp_path)["problems"]
    assert problem == f"{blob}: missing (kept in place at archive time)"


def test_choosing_archives(tmp_path, box):
    assert choose(str(tmp_path / "archives"), "")[1] == f"there is no complete Ollama archive in {tmp_path}/archives"
    create(tmp_path, box)
    (tmp_path / "archives" / "20270101T000000Z").mkdir()  # incomplete: never chosen
    ref, _ = choose(str(tmp_path / "archives"), "")
    assert ref is not None and ref.name == STAMP
    assert [a.complete for a in list_archives(str(tmp_path / "archives"))] == [True, False]
    assert "is incomplete" in choose(str(tmp_path / "archives"), "20270101T000000Z")[1]
    assert "there is no archive named nope" in choose(str(tmp_path / "archives"), "nope")[1]


def test_restore_puts_back_missing_and_changed_files_with_mtime_and_mode(tmp_path, box):
    folder = Path(create(tmp_path, box)["archive"]["path"])
    manifest_file = tmp_path / "models/manifests/registry.ollama.ai/library/classroom-tiny/latest"
    original = manifest_file.read_bytes()
    manifest_file.unlink()
    unit = Path(box["instances"][0]["fragment"])
    unit.write_text("[Service]\nExecStart=/bin/false\n")
    key = Path(box["instances"][0]["home"]) / ".ollama/id_ed25519"
    key.chmod(0o644)
    dry = run_module(ollama_archive_restore, {"archive": str(folder)}, check=True)
    assert {r["path"]: r["why"] for r in dry["restore"]["restored"]} == {
        str(manifest_file): "missing", str(key): "mode or owner", str(unit): "content"}
    assert not manifest_file.exists()
    staged = tmp_path / "run/haproxy.cfg"
    result = run_module(ollama_archive_restore, {"archive": str(folder), "haproxy_dest": str(staged)})
    assert result["changed"]
    # The store's manifest comes back first.
    assert result["restore"]["restored"][0]["path"] == str(manifest_file)
    assert manifest_file.read_bytes() == original and manifest_file.stat().st_mtime == MTIME
    assert unit.read_text().startswith("[Service]\nExecStart=/usr/local/bin/ollama serve")
    assert key.stat().st_mode & 0o777 == 0o600
    assert staged.read_text() == Path(box["haproxy"]["path"]).read_text()
    assert result["restore"]["haproxy_source"] == box["haproxy"]["path"]
    again = run_module(ollama_archive_restore, {"archive": str(folder)})
    assert again["changed"] is False and again["restore"]["restored"] == []


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_blobs_copied_or_moved_come_back_after_their_manifests(tmp_path, box, mode):
    blobs = tmp_path / "models" / "blobs"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in blobs.iterdir()}
    folder = Path(create(tmp_path, box, blob_mode=mode)["archive"]["path"])
    assert {p.name for p in (folder / "blobs").iterdir()} == set(before)
    assert (len(list(blobs.iterdir())) == 0) == (mode == "move")
    assert verify(tmp_path)["problems"] == []
    for blob in blobs.iterdir():
        blob.unlink()
    run_module(ollama_archive_restore, {"archive": str(folder)})
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in blobs.iterdir()} == before


def test_the_report_names_the_measurement(tmp_path, box):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "report.json").write_text(json.dumps({
        "config": {"base_url": "http://127.0.0.1:11434", "api": "ollama", "model": "classroom-tiny:latest",
                   "profile": "ollama", "students": 4, "duration_s": 5, "warmup_s": 1},
        "aggregates": {"requests_measured": 40, "failures_total": 0, "output_tok_s": 321.5,
                       "latency_ms": {"ttft": {"p95": 42.0}}},
        "verdict": {"status": "pass", "checks": [
            {"name": "failures_max", "measured": 0, "limit": 0, "passed": True, "detail": "0 failed"}]}}))
    folder = Path(create(tmp_path, box, measure={"status": "pass", "remote_report_dir": str(probe_dir)})
                  ["archive"]["path"])
    report = (folder / "OLLAMA_TEST_REPORT.md").read_text()
    assert "Verdict: **PASS**" in report and "TTFT p95: 42.0 ms" in report
    assert "| failures_max | 0 | 0 | pass | 0 failed |" in report
    assert "what it lacks is tensor parallelism" in report
    assert os.path.exists(folder / "MANIFEST.json")
