#!/usr/bin/python
"""Ansible module: put an Ollama archive's files back where they were, store first."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ollama_archive_restore
short_description: Restore the archived files that are missing or differ, with their content, mode, owner and mtime
description:
  - Model manifests first, then copied or moved blobs, then keys, environment files, units, drop-ins and
    result files; a file already identical (content, mode, owner, mtime) is left alone.
  - The HAProxy config is not written here; it is extracted to haproxy_dest for a validated install.
  - Expects an archive that ollama_archive_verify passed; a member that no longer matches stops it.
options:
  archive:
    description: Path of the archive folder.
    type: str
    required: true
  haproxy_dest:
    description: Where to put the archived HAProxy config for its validated install; empty skips it.
    type: str
    default: ''
author: Classroom Cluster
"""

RETURN = r"""
restore:
  description: restored (list of path and why), haproxy_source (the original config path, '' when none), haproxy_staged.
  returned: always
  type: dict
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ollama_archive_manifest import (
    RESTORE_ORDER,
    extract_member,
    load_manifest,
    restore_blobs,
    restore_files,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "archive": {"type": "str", "required": True},
            "haproxy_dest": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    manifest, problems = load_manifest(p["archive"])
    if manifest is None:
        module.fail_json(msg="; ".join(problems))
    result: dict[str, Any] = {"restored": [], "haproxy_source": "", "haproxy_staged": ""}
    try:
        result["restored"] += restore_files(p["archive"], manifest, ("manifest",), module.check_mode)
        result["restored"] += restore_blobs(p["archive"], manifest, module.check_mode)
        result["restored"] += restore_files(p["archive"], manifest, RESTORE_ORDER[1:], module.check_mode)
        if p["haproxy_dest"] and not module.check_mode:
            result["haproxy_source"] = extract_member(p["archive"], manifest, "haproxy", p["haproxy_dest"])
            result["haproxy_staged"] = p["haproxy_dest"] if result["haproxy_source"] else ""
        elif p["haproxy_dest"]:
            files = manifest.get("files", [])
            result["haproxy_source"] = next((f["path"] for f in files if f["kind"] == "haproxy"), "")
    except (OSError, ValueError, KeyError) as exc:
        module.fail_json(msg=f"Restoring files from {p['archive']} failed: {exc}", restore=result)
    module.exit_json(changed=bool(result["restored"]), restore=result)


if __name__ == "__main__":
    main()
