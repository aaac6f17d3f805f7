#!/usr/bin/python
"""Ansible module: choose an Ollama archive and check every checksum it records (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ollama_archive_verify
short_description: Choose the newest (or a named) Ollama archive and verify every sha256 it records
description:
  - Checks MANIFEST.json against its checksum file, every payload file (tarball, blob copies, reports),
    every archived file inside the tarball, and blobs kept in place (size, or sha256 with blob_check=sha256).
  - Never fails by itself; the result lists the problems, each naming the file, for the play to judge.
options:
  root:
    description: Folder holding the archives.
    type: str
    required: true
  name:
    description: Archive folder name or path; empty chooses the newest complete one.
    type: str
    default: ''
  blob_check:
    description: How blobs kept in place are checked (size or sha256).
    type: str
    default: size
author: Classroom Cluster
"""

RETURN = r"""
verification:
  description: found (bool), reason (when none), archive (path), name, problems, checked_files, checked_bytes,
    manifest (the parsed MANIFEST.json when it could be read).
  returned: always
  type: dict
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ollama_archive_manifest import choose, load_manifest, verify


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "str", "required": True},
            "name": {"type": "str", "default": ""},
            "blob_check": {"type": "str", "default": "size", "choices": ["size", "sha256"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    ref, reason = choose(p["root"], p["name"])
    result: dict[str, Any] = {"found": ref is not None, "reason": reason, "archive": "", "name": "",
                              "problems": [], "checked_files": 0, "checked_bytes": 0, "manifest": {}}
    if ref is None:
        module.exit_json(changed=False, verification=result)
    result.update({"archive": ref.path, "name": ref.name})
    manifest, problems = load_manifest(ref.path)
    if manifest is None:
        result["problems"] = problems
        module.exit_json(changed=False, verification=result)
    checked = verify(ref.path, manifest, p["blob_check"])
    result.update({"problems": checked.problems, "checked_files": checked.checked_files,
                   "checked_bytes": checked.checked_bytes, "manifest": manifest})
    module.exit_json(changed=False, verification=result)


if __name__ == "__main__":
    main()
