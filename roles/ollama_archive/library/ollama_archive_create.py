#!/usr/bin/python
"""Ansible module: write one Ollama archive (MANIFEST.json, configs tarball, blob copies, OLLAMA_TEST_REPORT.md)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ollama_archive_create
short_description: Write a timestamped Ollama archive from what ollama_archive_discover found
description:
  - Creates <root>/<stamp>/ (mode 0700) with configs.tar.gz (every unit, drop-in, environment file,
    key, model manifest, HAProxy config and result file with its metadata), blob copies when blobs are
    copied or moved, OLLAMA_TEST_REPORT.md, and last MANIFEST.json with its checksum file.
  - Files are re-read and hashed here; a file that changes while the archive is written stops it.
  - In check mode nothing is written; the result says what would be.
options:
  root:
    description: Folder holding the archives.
    type: str
    required: true
  stamp:
    description: Name of the new archive folder (a UTC time stamp).
    type: str
    required: true
  host:
    description: The inventory name of the box (recorded).
    type: str
    required: true
  discovery:
    description: The result of ollama_archive_discover.
    type: dict
    required: true
  blob_mode:
    description: in_place (record by digest), copy or move into the archive.
    type: str
    default: in_place
  measure:
    description: 'The "before" measurement: status, reason, remote_report_dir.'
    type: dict
    default: {}
author: Classroom Cluster
"""

RETURN = r"""
archive:
  description: path, stamp, files (count), bytes (tarball), blobs (archived count), report (path), instances.
  returned: always
  type: dict
"""

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ollama_archive_manifest import (
    BLOBS,
    REPORT,
    SCHEMA,
    SCHEMA_VERSION,
    TARBALL,
    FileEntry,
    PayloadEntry,
    copy_blob,
    seal,
    write_atomic,
    write_tarball,
)
from ansible.module_utils.ollama_archive_report import render
from ansible.module_utils.ollama_archive_units import redact_unit_text

_HAPROXY_SECRET = re.compile(r"(?P<key>\b(?:insecure-password|password|auth)\s+)(?P<value>\S+)")


def redact_haproxy(text: str) -> str:
    return _HAPROXY_SECRET.sub(lambda m: m.group("key") + "<redacted>", text)


def unit_texts(inst: dict[str, Any]) -> dict[str, str]:
    texts = {}
    for path in [inst["fragment"], *inst["drop_ins"]]:
        try:
            texts[path] = redact_unit_text(Path(path).read_text(errors="replace"))
        except OSError:
            continue
    return texts


def build_manifest(p: dict[str, Any], folder: Path, entries: list[FileEntry],
                   archived: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    d = p["discovery"]
    instances = []
    for inst in d["instances"]:
        item = {k: v for k, v in inst.items() if k != "exec_start"}
        item["exec_start"] = inst["exec_start"]
        item["unit_files"] = unit_texts(inst)
        instances.append(item)
    stores = []
    for store in d["stores"]:
        entry = dict(store)
        entry["archived_blobs"] = archived.get(store["path"], [])
        stores.append(entry)
    haproxy = {k: v for k, v in d["haproxy"].items() if k not in ("gateway",)}
    original = next((e for e in entries if e.kind == "haproxy"), None)
    if original is not None:
        haproxy["text"] = redact_haproxy(Path(original.path).read_text(errors="replace"))
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": p["host"],
        "archive": str(folder),
        "blob_mode": p["blob_mode"],
        "checked_blob_digests": d.get("checked_blob_digests", False),
        "instances": instances,
        "stores": stores,
        "binary": d["binary"],
        "gpu": d["gpu"],
        "haproxy": haproxy,
        "results": d["results"],
        "measure": {k: v for k, v in p["measure"].items() if k in ("status", "reason", "remote_report_dir", "model",
                                                                    "url")},
        "files": [e.to_json() for e in entries],
        "payload": [],
    }


def read_probe(report_dir: str) -> tuple[dict[str, Any] | None, str]:
    if not report_dir:
        return None, ""
    path = Path(report_dir) / "report.json"
    try:
        return json.loads(path.read_text()), str(path)
    except (OSError, ValueError):
        return None, ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "str", "required": True},
            "stamp": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "discovery": {"type": "dict", "required": True},
            "blob_mode": {"type": "str", "default": "in_place", "choices": ["in_place", "copy", "move"]},
            "measure": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    d = p["discovery"]
    folder = Path(p["root"]) / p["stamp"]
    summary = {
        "path": str(folder),
        "stamp": p["stamp"],
        "files": len(d["files"]),
        "instances": [i["unit"] for i in d["instances"]],
        "blob_mode": p["blob_mode"],
        "blobs": sum(len(s["referenced"]) for s in d["stores"]) if p["blob_mode"] != "in_place" else 0,
        "report": str(folder / REPORT),
    }
    if (folder / "MANIFEST.json").exists():
        module.fail_json(msg=f"{folder} already holds an archive; it is never overwritten")
    if module.check_mode:
        module.exit_json(changed=True, archive=summary)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(p["root"], 0o700)
        os.chmod(folder, 0o700)
        entries = [FileEntry.of(f["path"], f["kind"]) for f in d["files"]]
        write_tarball(folder / TARBALL, entries)
        os.chmod(folder / TARBALL, 0o600)
        archived: dict[str, list[dict[str, Any]]] = {}
        if p["blob_mode"] != "in_place":
            (folder / BLOBS).mkdir(mode=0o700, exist_ok=True)
            for store in d["stores"]:
                for name in store["referenced"]:
                    src = os.path.join(store["path"], "blobs", name)
                    st = os.stat(src)
                    copy_blob(src, folder / BLOBS, p["blob_mode"] == "move")
                    archived.setdefault(store["path"], []).append(
                        {"name": name, "size": st.st_size, "uid": st.st_uid, "gid": st.st_gid,
                         "mtime_ns": st.st_mtime_ns})
        manifest = build_manifest(p, folder, entries, archived)
        probe, probe_path = read_probe(p["measure"].get("remote_report_dir", ""))
        write_atomic(folder / REPORT, render(manifest, probe, probe_path).encode(), 0o644)
        payload = sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                         if path.is_file() and not path.name.startswith(("MANIFEST.json", ".")))
        manifest["payload"] = [PayloadEntry.of(folder, rel).__dict__ for rel in payload]
        seal(folder, manifest)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"Writing the archive {folder} failed, nothing was stopped: {exc}. The folder is "
                             "incomplete (no MANIFEST.json.sha256) and is never chosen for a restore; remove it.")
    summary["bytes"] = (folder / TARBALL).stat().st_size
    module.exit_json(changed=True, archive=summary)


if __name__ == "__main__":
    main()
