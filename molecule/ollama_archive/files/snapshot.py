#!/usr/bin/python3
"""Test helper: a JSON snapshot of the Ollama stand-in's stores, the HAProxy config and /api/tags.

    snapshot.py OUT [--api]

Every file under the two model stores with sha256, size, mtime_ns, uid, gid and mode; the HAProxy
config's sha256; with --api the digest and modified_at of every model each instance lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from pathlib import Path

STORES = ["/usr/share/ollama/.ollama/models", "/srv/ollama/models-gpu3"]
PORTS = [11435, 11436, 11437, 11438]
HAPROXY = "/etc/haproxy/haproxy.cfg"


def files(root: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path)] = {
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "uid": st.st_uid,
                "gid": st.st_gid,
                "mode": oct(st.st_mode & 0o7777),
            }
    return out


def tags(port: int) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tags", timeout=10) as resp:
        models = json.load(resp)["models"]
    return {m["name"]: {"digest": m["digest"], "modified_at": m["modified_at"], "size": m["size"]} for m in models}


def main(argv: list[str]) -> int:
    snap: dict[str, object] = {
        "files": {k: v for store in STORES for k, v in files(store).items()},
        "haproxy_sha256": hashlib.sha256(Path(HAPROXY).read_bytes()).hexdigest(),
    }
    if "--api" in argv:
        snap["tags"] = {str(port): tags(port) for port in PORTS}
    Path(argv[0]).write_text(json.dumps(snap, indent=1, sort_keys=True))
    os.chmod(argv[0], 0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
