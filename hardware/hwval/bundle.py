"""Packs the results folder into one tar.gz that fits what comes back from the GPU host (16 MiB a file)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

MAX_BYTES = 15 * 1024 * 1024
LOG_KEEP = 512 * 1024  # head and tail of a large log


def _trimmed(path: Path, keep: int) -> bytes:
    data = path.read_bytes()
    if len(data) <= 2 * keep:
        return data
    cut = len(data) - 2 * keep
    return data[:keep] + f"\n[... {cut} bytes cut by hwval bundle ...]\n".encode() + data[-keep:]


def bundle(results: Path, out_file: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Everything under `results` as `<results.name>/...`; logs trimmed, smaller keeps tried until it fits."""
    for keep in (LOG_KEEP, LOG_KEEP // 4, 16 * 1024):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(p for p in results.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
                data = _trimmed(path, keep) if path.suffix in (".log", ".txt") else path.read_bytes()
                info = tarfile.TarInfo(f"{results.name}/{path.relative_to(results)}")
                info.size = len(data)
                info.mtime = int(path.stat().st_mtime)
                tar.addfile(info, io.BytesIO(data))
        if buf.tell() <= max_bytes:
            break
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(buf.getvalue())
    return out_file
