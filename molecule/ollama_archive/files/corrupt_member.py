#!/usr/bin/python3
"""Test helper: rewrite an archive's configs.tar.gz with one member's content changed (one byte appended).

    corrupt_member.py ARCHIVE_DIR MEMBER
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path


def main(argv: list[str]) -> int:
    tarball = Path(argv[0]) / "configs.tar.gz"
    members = []
    with tarfile.open(tarball, "r:gz") as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            data = fh.read() if fh else b""
            if info.name == argv[1]:
                data += b"#"
                info.size = len(data)
            members.append((info, data))
    with tarfile.open(tarball, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
