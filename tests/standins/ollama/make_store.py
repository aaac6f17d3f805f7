#!/usr/bin/python3
"""TEST STAND-IN: writes small but correctly formed Ollama models into a model store. Lab and tests only.

    make_store.py MODELS_DIR NAME [NAME ...] [--mtime EPOCH] [--owner USER] [--orphan] [--partial]

Each NAME (e.g. classroom-tiny:latest, hf.co/acme/tiny-gguf:Q4_K_M) becomes a manifest at
manifests/<host>/<namespace>/<model>/<tag> (compact JSON, schemaVersion 2, Docker manifest media
type) and blobs/sha256-<hex> named by their sha256: a GGUF header with padding (the weights layer),
a template, a params layer and the config blob /api/tags reads its details from. Contents depend
only on the name, so the same model in two stores is byte-identical (as after `ollama pull` on each
instance). Files get the given mtime (default: 2025-01-01, older than prune's one-hour grace) and owner.
--orphan adds an old blob no manifest references, --partial an unfinished download; `ollama serve`
prunes both at start unless OLLAMA_NOPRUNE is set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import struct
import sys
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
WEIGHTS_BYTES = 48 * 1024
DEFAULT_MTIME = 1735689600  # 2025-01-01T00:00:00Z


def split_name(name: str) -> tuple[str, str, str, str]:
    base, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    parts = base.split("/")
    if len(parts) == 1:
        return "registry.ollama.ai", "library", parts[0], tag
    if len(parts) == 2:
        return "registry.ollama.ai", parts[0], parts[1], tag
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], tag
    raise SystemExit(f"not a model name: {name}")


def filler(seed: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def gguf(seed: str, arch: str) -> bytes:
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    # GGUF v3: magic, version, tensor count, metadata count, then one string pair (type 8).
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    head += string("general.architecture") + struct.pack("<I", 8) + string(arch)
    head += string("general.name") + struct.pack("<I", 8) + string(f"stand-in {seed}")
    return head + filler(seed, WEIGHTS_BYTES - len(head))


def write_blob(models: Path, data: bytes, mtime: int, owner: tuple[int, int] | None) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = models / "blobs" / f"sha256-{digest}"
    path.write_bytes(data)
    finish(path, mtime, owner)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def finish(path: Path, mtime: int, owner: tuple[int, int] | None) -> None:
    path.chmod(0o644)
    if owner:
        os.chown(path, *owner)
    os.utime(path, (mtime, mtime))


def write_model(models: Path, name: str, mtime: int, owner: tuple[int, int] | None) -> Path:
    host, namespace, model, tag = split_name(name)
    family = "llama"
    weights = write_blob(models, gguf(f"{host}/{namespace}/{model}", family), mtime, owner)
    template = write_blob(models, b"{{ .System }}\n{{ .Prompt }}", mtime, owner)
    params = write_blob(models, json.dumps({"stop": ["</s>"], "temperature": 0.2}).encode(), mtime, owner)
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", **weights},
        {"mediaType": "application/vnd.ollama.image.template", **template},
        {"mediaType": "application/vnd.ollama.image.params", **params},
    ]
    config = {
        "model_format": "gguf",
        "model_family": family,
        "model_families": [family],
        "model_type": "0.1B",
        "file_type": tag.upper() if tag.upper().startswith("Q") else "Q4_K_M",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }
    config_ref = write_blob(models, json.dumps(config, separators=(",", ":")).encode(), mtime, owner)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, **config_ref},
        "layers": layers,
    }
    path = models / "manifests" / host / namespace / model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(manifest, separators=(",", ":")).encode())
    finish(path, mtime, owner)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--mtime", type=int, default=DEFAULT_MTIME)
    parser.add_argument("--owner")
    parser.add_argument("--orphan", action="store_true")
    parser.add_argument("--partial", action="store_true")
    args = parser.parse_args(argv)
    owner = None
    if args.owner:
        entry = pwd.getpwnam(args.owner)
        owner = (entry.pw_uid, entry.pw_gid)
    (args.models / "blobs").mkdir(parents=True, exist_ok=True)
    (args.models / "manifests").mkdir(parents=True, exist_ok=True)
    for name in args.names:
        print(write_model(args.models, name, args.mtime, owner))
    if args.orphan:
        write_blob(args.models, filler("orphan", 4096), args.mtime, owner)
    if args.partial:
        partial = args.models / "blobs" / f"sha256-{hashlib.sha256(b'partial').hexdigest()}-partial"
        partial.write_bytes(filler("partial", 1024))
        finish(partial, args.mtime, owner)
    if owner:
        for folder in [args.models, *[p for p in args.models.rglob("*") if p.is_dir()]]:
            os.chown(folder, *owner)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
