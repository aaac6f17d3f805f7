#!/usr/bin/python3
"""Test helper: what an archive holds, read in one pass (the verify step's checks compare it).

    archive_facts.py ARCHIVE_DIR

Prints JSON: every tarball member's sha256, mtime, mode and owner; the sha256 of each archived file
where it lives now (null when it is gone); the sha256 of each payload file of the archive folder.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path


def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    manifest = json.loads((folder / "MANIFEST.json").read_bytes())
    members: dict[str, list[object]] = {}
    with tarfile.open(folder / "configs.tar.gz") as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            if fh is not None:
                members[info.name] = [hashlib.sha256(fh.read()).hexdigest(), int(info.mtime), info.mode, info.uname]
    print(json.dumps({
        "members": members,
        "disk": {f["path"]: sha(Path(f["path"])) for f in manifest["files"]},
        "payload": {p["path"]: sha(folder / p["path"]) for p in manifest["payload"]},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
