"""Ollama's model store on disk: manifests, blobs, and the checks the archive makes on them.

Layout: <models>/manifests/<host>/<namespace>/<model>/<tag> (JSON, digests `sha256:<hex>`) and
<models>/blobs/sha256-<hex> (a dash on disk). A model's digest in /api/tags is the sha256 of its
manifest file's bytes and its modified_at the file's mtime, so both are what a restore keeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
_BLOB = re.compile(r"^sha256-(?P<hex>[0-9a-f]{64})$")
_DIGEST = re.compile(r"^sha256:(?P<hex>[0-9a-f]{64})$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256:<hex>
    size: int
    media_type: str

    @property
    def blob_name(self) -> str:
        return self.digest.replace(":", "-", 1)


@dataclass
class ModelManifest:
    name: str  # as /api/tags shows it
    path: str  # absolute
    rel: str  # manifests/<host>/<namespace>/<model>/<tag>
    digest: str  # sha256 hex of the file's bytes
    bytes: int
    mtime_ns: int
    layers: list[Layer] = field(default_factory=list)
    error: str = ""

    @property
    def total_size(self) -> int:
        """What /api/tags reports as size: every layer and the config."""
        return sum(layer.size for layer in self.layers)


@dataclass
class Blob:
    name: str
    path: str
    size: int
    mtime_ns: int


@dataclass
class Store:
    path: str
    exists: bool
    manifests: list[ModelManifest] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def referenced(self) -> set[str]:
        return {layer.blob_name for m in self.manifests for layer in m.layers}

    def unreferenced(self) -> list[Blob]:
        used = self.referenced()
        return [b for b in self.blobs if b.name not in used]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "models": [
                {
                    "name": m.name,
                    "manifest": m.rel,
                    "digest": m.digest,
                    "manifest_bytes": m.bytes,
                    "mtime_ns": m.mtime_ns,
                    "size": m.total_size,
                    "layers": [{"digest": la.digest, "size": la.size, "mediaType": la.media_type} for la in m.layers],
                    "error": m.error,
                }
                for m in self.manifests
            ],
            "blobs": [{"name": b.name, "size": b.size, "mtime_ns": b.mtime_ns} for b in self.blobs],
            "blob_bytes": sum(b.size for b in self.blobs),
            "partials": self.partials,
            "unreferenced": [b.name for b in self.unreferenced()],
            "problems": self.problems,
        }


def display_name(host: str, namespace: str, model: str, tag: str) -> str:
    """Ollama's DisplayShortest: default host and namespace left out."""
    if host.lower() != DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(data: bytes) -> list[Layer]:
    """The config and layers of a manifest; ValueError names what is wrong."""
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    refs = []
    config = obj.get("config")
    if isinstance(config, dict) and config.get("digest"):
        refs.append(config)
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise ValueError("no layers list")
    refs.extend(layer for layer in layers if isinstance(layer, dict))
    out = []
    for ref in refs:
        digest = str(ref.get("digest", ""))
        if not _DIGEST.match(digest):
            raise ValueError(f"digest {digest!r} is not sha256:<64 hex>")
        size = ref.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"size of {digest} is not a byte count")
        out.append(Layer(digest, size, str(ref.get("mediaType", ""))))
    return out


def scan_store(models: str, check_digests: bool = False) -> Store:
    """Every manifest (exactly four levels down) and blob; problems: unreadable manifests, missing
    blobs, blobs whose size or (with check_digests) sha256 differs from what the manifest says."""
    root = Path(models)
    store = Store(path=models, exists=root.is_dir())
    if not store.exists:
        return store
    _scan_blobs(root / "blobs", store)
    by_name = {b.name: b for b in store.blobs}
    for path in sorted(p for p in (root / "manifests").glob("*/*/*/*") if p.is_file()):
        manifest = _read_manifest(root, path, store)
        for layer in manifest.layers:
            blob = by_name.get(layer.blob_name)
            if blob is None:
                store.problems.append(f"{path} ({manifest.name}) references {layer.digest}, but blob "
                                      f"{root / 'blobs' / layer.blob_name} is missing")
            elif blob.size != layer.size:
                store.problems.append(f"{blob.path}: {blob.size} bytes, manifest {path} says {layer.size}")
    if check_digests:
        referenced = store.referenced()
        for blob in store.blobs:
            if blob.name in referenced and f"sha256-{sha256_file(blob.path)}" != blob.name:
                store.problems.append(f"{blob.path}: content sha256 differs from the one in its name")
    return store


def _scan_blobs(blobs_dir: Path, store: Store) -> None:
    if not blobs_dir.is_dir():
        return
    for entry in sorted(blobs_dir.iterdir()):
        if not entry.is_file():
            continue
        if "-partial" in entry.name:
            store.partials.append(entry.name)
        elif _BLOB.match(entry.name):
            st = entry.stat()
            store.blobs.append(Blob(entry.name, str(entry), st.st_size, st.st_mtime_ns))


def _read_manifest(root: Path, path: Path, store: Store) -> ModelManifest:
    host, namespace, model, tag = path.relative_to(root / "manifests").parts
    data = path.read_bytes()
    manifest = ModelManifest(
        name=display_name(host, namespace, model, tag),
        path=str(path),
        rel=str(path.relative_to(root)),
        digest=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        mtime_ns=path.stat().st_mtime_ns,
    )
    try:
        manifest.layers = parse_manifest(data)
    except ValueError as exc:
        manifest.error = str(exc)
        store.problems.append(f"{path}: unreadable manifest ({exc})")
    store.manifests.append(manifest)
    return manifest


def default_models_dir(home: str) -> str:
    return os.path.join(home, ".ollama", "models")
