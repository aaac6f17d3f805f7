"""Packs a results folder into one tar.gz, to carry it from the GPU host to where it is summarized."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

LOG_SUFFIXES = (".log", ".txt")


def trimmed(data: bytes, keep: int) -> bytes:
    """The first and last `keep` bytes of a large log, with a line saying how much was cut."""
    if keep <= 0 or len(data) <= 2 * keep:
        return data
    cut = len(data) - 2 * keep
    return data[:keep] + f"\n[... {cut} bytes cut when the results were packed ...]\n".encode() + data[-keep:]


def pack(results: Path, out_file: Path, log_keep: int = 0) -> Path:
    """Every file under `results` as `<results.name>/...`; with `log_keep` > 0, logs keep only head and tail."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    with tarfile.open(tmp, mode="w:gz") as tar:
        for path in sorted(p for p in results.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
            data = path.read_bytes()
            if path.suffix in LOG_SUFFIXES:
                data = trimmed(data, log_keep)
            info = tarfile.TarInfo(f"{results.name}/{path.relative_to(results)}")
            info.size = len(data)
            info.mtime = int(path.stat().st_mtime)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out_file)
    return out_file
