"""The Ollama stand-in against the facts it must match (the project's reference on Ollama 0.33)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.standins.standin_helpers import STANDIN, make_store, request, standin

MANIFEST = ("registry.ollama.ai", "library", "classroom-tiny", "latest")


def manifest_path(models: Path, parts: tuple[str, ...] = MANIFEST) -> Path:
    return models.joinpath("manifests", *parts)


def ndjson(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def sse(body: bytes) -> list[str]:
    return [block.removeprefix("data: ") for block in body.decode().split("\n\n") if block.strip()]


def test_root_and_head_say_ollama_is_running(server):
    assert server.get("/")[::2] == (200, b"Ollama is running")
    status, _, body = request(server.url + "/", method="HEAD")
    assert (status, body) == (200, b"")


def test_version(server):
    status, headers, body = server.get("/api/version")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"version": "0.33.0"}


def test_tags_are_computed_from_the_manifests_on_disk(server, store):
    newer = manifest_path(store, ("hf.co", "acme", "tiny-gguf", "Q4_K_M"))
    os.utime(newer, (1767225600, 1767225600))  # 2026-01-01: listed first
    status, _, body = server.get("/api/tags")
    models = json.loads(body)["models"]
    assert status == 200
    assert [m["name"] for m in models] == ["hf.co/acme/tiny-gguf:Q4_K_M", "classroom-tiny:latest"]
    tiny = models[1]
    path = manifest_path(store)
    manifest = json.loads(path.read_bytes())
    assert tiny["model"] == tiny["name"]
    assert tiny["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tiny["modified_at"] == "2025-01-01T00:00:00Z"
    assert models[0]["modified_at"] == "2026-01-01T00:00:00Z"
    assert tiny["size"] == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    assert tiny["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "0.1B",
        "quantization_level": "Q4_K_M",
    }


def test_manifest_and_blob_layout_is_ollamas(store):
    path = manifest_path(store)
    manifest = json.loads(path.read_bytes())
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert manifest["layers"][0]["mediaType"] == "application/vnd.ollama.image.model"
    for ref in [manifest["config"], *manifest["layers"]]:
        blob = store / "blobs" / ref["digest"].replace("sha256:", "sha256-")
        assert blob.stat().st_size == ref["size"]
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == ref["digest"].split(":")[1]
    assert (store / "blobs" / manifest["layers"][0]["digest"].replace(":", "-")).read_bytes()[:4] == b"GGUF"


def test_tags_rescan_on_every_call_and_an_empty_store_lists_nothing(server_factory, tmp_path):
    models = tmp_path / "empty"
    running = server_factory(models)
    assert json.loads(running.get("/api/tags")[2]) == {"models": []}
    assert json.loads(running.get("/v1/models")[2]) == {"object": "list", "data": None}
    make_store(models, "late:1b")
    assert [m["name"] for m in json.loads(running.get("/api/tags")[2])["models"]] == ["late:1b"]


def test_a_model_whose_config_blob_is_missing_is_left_out_of_tags(server, store):
    manifest = json.loads(manifest_path(store).read_bytes())
    (store / "blobs" / manifest["config"]["digest"].replace(":", "-")).unlink()
    names = [m["name"] for m in json.loads(server.get("/api/tags")[2])["models"]]
    assert names == ["hf.co/acme/tiny-gguf:Q4_K_M"]


def test_generate_streams_ndjson_with_counts_and_durations(server):
    status, headers, body = server.post(
        "/api/generate", {"model": "classroom-tiny", "prompt": "why share a GPU", "options": {"num_predict": 5}}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson"
    lines = ndjson(body)
    *parts, final = lines
    assert len(parts) == 5
    assert all(p["model"] == "classroom-tiny" and p["done"] is False and p["response"] for p in parts)
    assert all(p["created_at"].endswith("Z") for p in lines)
    assert final["done"] is True
    assert final["response"] == ""
    assert final["done_reason"] == "length"
    assert final["eval_count"] == 5
    assert final["prompt_eval_count"] == 4
    assert isinstance(final["context"], list)
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["total_duration"] >= final["load_duration"]


def test_generate_without_a_limit_stops_on_its_own_and_non_streaming_is_one_object(server):
    status, _, body = server.post("/api/generate", {"model": "classroom-tiny:latest", "prompt": "hi", "stream": False})
    obj = json.loads(body)
    assert status == 200
    assert obj["done"] is True and obj["done_reason"] == "stop"
    assert len(obj["response"].split()) == obj["eval_count"]


def test_chat_streams_messages_without_context(server):
    _, _, body = server.post("/api/chat", {"model": "classroom-tiny", "messages": [{"role": "user", "content": "hi"}],
                                           "options": {"num_predict": 3}})
    *parts, final = ndjson(body)
    assert [p["message"]["role"] for p in parts] == ["assistant"] * 3
    assert final["message"] == {"role": "assistant", "content": ""}
    assert "context" not in final
    assert final["eval_count"] == 3


def test_unknown_model_gets_ollamas_error_bodies(server):
    status, _, body = server.post("/api/generate", {"model": "foo", "prompt": "x"})
    assert (status, json.loads(body)) == (404, {"error": "model 'foo' not found"})
    status, _, body = server.post("/v1/chat/completions", {"model": "x", "messages": []})
    assert status == 404
    assert json.loads(body) == {
        "error": {"message": "model 'x' not found", "type": "not_found_error", "param": None, "code": None}
    }
    status, _, body = server.post("/api/generate", {"prompt": "x"})
    assert (status, json.loads(body)) == (400, {"error": "model is required"})


def test_openai_chat_sse_ends_with_the_usage_chunk_and_done(server):
    status, headers, body = server.post("/v1/chat/completions", {
        "model": "classroom-tiny", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4,
        "stream": True, "stream_options": {"include_usage": True},
    })
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    events = sse(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["system_fingerprint"] == "fp_ollama" for c in chunks)
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"]["content"]]
    assert len(content) == 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    usage = chunks[-1]
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 4
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 4


def test_openai_completions_carry_zero_usage_on_content_chunks(server):
    _, _, body = server.post("/v1/completions", {"model": "classroom-tiny", "prompt": "a b c", "max_tokens": 3,
                                                 "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(e) for e in sse(body)[:-1]]
    content = [c for c in chunks if c["choices"] and c["choices"][0]["text"]]
    assert len(content) == 3
    assert all(c["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} for c in content)
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_v1_models_lists_every_model_with_its_namespace(server):
    data = json.loads(server.get("/v1/models")[2])
    assert data["object"] == "list"
    by_id = {m["id"]: m for m in data["data"]}
    assert by_id["classroom-tiny:latest"]["owned_by"] == "library"
    assert by_id["classroom-tiny:latest"]["created"] == 1735689600
    assert by_id["hf.co/acme/tiny-gguf:Q4_K_M"]["owned_by"] == "acme"


def test_ps_lists_a_model_once_it_served_a_request(server):
    assert json.loads(server.get("/api/ps")[2]) == {"models": []}
    server.post("/api/generate", {"model": "classroom-tiny", "prompt": "x", "options": {"num_predict": 1}})
    (loaded,) = json.loads(server.get("/api/ps")[2])["models"]
    assert loaded["name"] == "classroom-tiny:latest"
    assert loaded["size_vram"] == 0
    assert loaded["context_length"] == 4096
    expires = datetime.fromisoformat(loaded["expires_at"].replace("Z", "+00:00"))
    assert 200 < (expires - datetime.now(UTC)).total_seconds() <= 300


def test_unknown_paths_get_gins_404(server):
    assert server.get("/api/nothing")[::2] == (404, b"404 page not found")


def stream_times(url: str, results: dict[str, float], key: str) -> None:
    body = json.dumps({"model": "classroom-tiny", "prompt": "x", "options": {"num_predict": 8}}).encode()
    req = urllib.request.Request(url + "/api/generate", data=body)
    with urllib.request.urlopen(req, timeout=30) as resp:
        first = True
        for line in resp:
            if first and json.loads(line).get("response"):
                results[f"{key}_first"] = time.monotonic()
                first = False
        results[f"{key}_done"] = time.monotonic()


def test_one_request_at_a_time_per_model(server_factory, store):
    running = server_factory(store, STANDIN_TOKEN_MS="25")
    results: dict[str, float] = {}
    a = threading.Thread(target=stream_times, args=(running.url, results, "a"))
    a.start()
    time.sleep(0.05)
    b = threading.Thread(target=stream_times, args=(running.url, results, "b"))
    b.start()
    a.join(30)
    b.join(30)
    # The second request streams its first token only after the first one finished.
    assert results["b_first"] >= results["a_done"]


def test_a_full_queue_answers_503_with_ollamas_message(server_factory, store):
    running = server_factory(store, STANDIN_TOKEN_MS="100", OLLAMA_MAX_QUEUE="1")
    threads = [threading.Thread(target=stream_times, args=(running.url, {}, str(i))) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    status, _, body = running.post("/api/generate", {"model": "classroom-tiny", "prompt": "x"})
    for t in threads:
        t.join(30)
    assert status == 503
    assert json.loads(body) == {"error": "server busy, please try again.  maximum pending requests exceeded"}


def prune_store(tmp_path: Path) -> tuple[Path, set[str]]:
    models = tmp_path / "prune"
    make_store(models, "classroom-tiny:latest", extra=("--orphan", "--partial"))
    fresh = models / "blobs" / ("sha256-" + "f" * 64)
    fresh.write_bytes(b"downloaded a minute ago")
    before = {p.name for p in (models / "blobs").iterdir()}
    return models, before


def test_serve_prunes_old_unreferenced_blobs_and_partials_but_spares_the_last_hour(server_factory, tmp_path):
    models, before = prune_store(tmp_path)
    running = server_factory(models)
    after = {p.name for p in (models / "blobs").iterdir()}
    removed = before - after
    assert len(removed) == 2
    assert any(name.endswith("-partial") for name in removed)
    assert "sha256-" + "f" * 64 in after
    assert json.loads(running.get("/api/tags")[2])["models"][0]["name"] == "classroom-tiny:latest"
    assert "total unused blobs removed: 2" in running.log()


def test_noprune_keeps_every_blob(server_factory, tmp_path):
    models, before = prune_store(tmp_path)
    running = server_factory(models, OLLAMA_NOPRUNE="1")
    assert {p.name for p in (models / "blobs").iterdir()} == before
    assert "OLLAMA_NOPRUNE" in running.log()


def test_a_corrupt_manifest_stops_the_prune(server_factory, tmp_path):
    models, before = prune_store(tmp_path)
    bad = manifest_path(models, ("registry.ollama.ai", "library", "broken", "latest"))
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    running = server_factory(models)
    assert {p.name for p in (models / "blobs").iterdir()} == before
    assert "skipping prune" in running.log()


def test_version_flag_asks_the_server(server):
    out = subprocess.run([sys.executable, str(STANDIN / "ollama_standin.py"), "--version"], env=server.env,
                         capture_output=True, text=True, check=True).stdout
    assert out == "ollama version is 0.33.0\n"
    alone = {**server.env, "OLLAMA_HOST": "127.0.0.1:9"}
    out = subprocess.run([sys.executable, str(STANDIN / "ollama_standin.py"), "--version"], env=alone,
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "Warning: client version is 0.33.0"


def test_first_start_writes_a_keypair(server):
    assert (server.home / ".ollama" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (server.home / ".ollama" / "id_ed25519.pub").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("http", "127.0.0.1", 11434)),
        ("0.0.0.0", ("http", "0.0.0.0", 11434)),
        (":11435", ("http", "", 11435)),
        ("127.0.0.1:11436", ("http", "127.0.0.1", 11436)),
        ("http://10.0.0.5", ("http", "10.0.0.5", 80)),
        ("https://box.example:8443/x", ("https", "box.example", 8443)),
        ("[::1]:11437", ("http", "::1", 11437)),
        ("127.0.0.1:99999", ("http", "127.0.0.1", 11434)),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(value, expected):
    assert standin.parse_host(value) == expected


@pytest.mark.parametrize(
    ("text", "shortest"),
    [
        ("gemma3", "gemma3:latest"),
        ("gemma3:4b", "gemma3:4b"),
        ("registry.ollama.ai/library/gemma3:4b", "gemma3:4b"),
        ("acme/tiny:1b", "acme/tiny:1b"),
        ("hf.co/acme/tiny-gguf:Q4_K_M", "hf.co/acme/tiny-gguf:Q4_K_M"),
    ],
)
def test_names_are_displayed_shortest(text, shortest):
    name = standin.Name.parse(text)
    assert name is not None and name.shortest() == shortest
