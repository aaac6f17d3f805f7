"""The model store as the archive reads it: manifests, digests as /api/tags shows them, broken stores."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible.module_utils.ollama_archive_store import display_name, parse_manifest, scan_store

from tests.standins.standin_helpers import make_store, standin

MANIFEST = "manifests/registry.ollama.ai/library/classroom-tiny/latest"


def test_scan_finds_models_with_the_digests_ollama_lists(store):
    scanned = scan_store(str(store), check_digests=True)
    assert scanned.problems == []
    by_name = {m.name: m for m in scanned.manifests}
    assert sorted(by_name) == ["classroom-tiny:latest", "hf.co/acme/tiny-gguf:Q4_K_M"]
    tiny = by_name["classroom-tiny:latest"]
    assert tiny.rel == MANIFEST
    assert tiny.digest == hashlib.sha256((store / MANIFEST).read_bytes()).hexdigest()
    assert tiny.mtime_ns == (store / MANIFEST).stat().st_mtime_ns
    # The stand-in computes /api/tags independently: both agree on digest and size.
    listed = {m.name.shortest(): m for m in standin.list_models(store)}
    assert listed["classroom-tiny:latest"].digest == tiny.digest
    assert listed["classroom-tiny:latest"].size == tiny.total_size
    assert {b.name for b in scanned.blobs} == scanned.referenced()


def test_a_manifest_pointing_at_a_missing_blob_is_named(store):
    manifest = json.loads((store / MANIFEST).read_bytes())
    weights = manifest["layers"][0]["digest"]
    (store / "blobs" / weights.replace(":", "-")).unlink()
    problems = scan_store(str(store)).problems
    assert len(problems) == 1
    assert f"{store / MANIFEST} (classroom-tiny:latest) references {weights}, but blob" in problems[0]


def test_a_blob_whose_content_differs_from_its_name_is_named_only_when_hashing(store):
    manifest = json.loads((store / MANIFEST).read_bytes())
    blob = store / "blobs" / manifest["layers"][1]["digest"].replace(":", "-")
    data = bytearray(blob.read_bytes())
    data[0] ^= 1  # same size, other content
    blob.write_bytes(bytes(data))
    assert scan_store(str(store), check_digests=False).problems == []
    (problem,) = scan_store(str(store), check_digests=True).problems
    assert problem.startswith(f"{blob}: content sha256 differs")


def test_a_size_mismatch_and_an_unreadable_manifest_are_named(store):
    manifest = json.loads((store / MANIFEST).read_bytes())
    blob = store / "blobs" / manifest["layers"][2]["digest"].replace(":", "-")
    blob.write_bytes(blob.read_bytes() + b" ")
    broken = store / "manifests/registry.ollama.ai/library/broken/latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    problems = scan_store(str(store)).problems
    assert any(f"{blob}: " in p and "bytes, manifest" in p for p in problems)
    assert any(p.startswith(f"{broken}: unreadable manifest") for p in problems)


def test_partials_and_unreferenced_blobs_are_listed(tmp_path):
    models = tmp_path / "m"
    make_store(models, "classroom-tiny:latest", extra=("--orphan", "--partial"))
    scanned = scan_store(str(models))
    assert len(scanned.partials) == 1 and scanned.partials[0].endswith("-partial")
    assert len(scanned.unreferenced()) == 1
    assert scanned.problems == []


def test_a_missing_store_is_reported_not_raised(tmp_path):
    scanned = scan_store(str(tmp_path / "nothing"))
    assert not scanned.exists and scanned.manifests == []


def test_names_and_manifest_validation():
    assert display_name("registry.ollama.ai", "library", "gemma3", "4b") == "gemma3:4b"
    assert display_name("registry.ollama.ai", "acme", "tiny", "1b") == "acme/tiny:1b"
    assert display_name("hf.co", "acme", "tiny", "Q4") == "hf.co/acme/tiny:Q4"
    bad = json.dumps({"layers": [{"digest": "sha256:xyz", "size": 1}]}).encode()
    with pytest.raises(ValueError, match="sha256:<64 hex>"):
        parse_manifest(bad)
