#!/usr/bin/python
"""Ansible module: find every Ollama instance on the box and everything that belongs to it (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ollama_archive_discover
short_description: Find every systemd unit running `ollama serve`, its configuration, models and HAProxy routes
description:
  - Reads units through C(systemctl show) (drop-ins, templates and EnvironmentFile= resolved), each
    instance's effective environment, model store, models on disk and (when running) from its API,
    the binary and its version, GPU memory its runners hold (nvidia-smi where present), the HAProxy
    config whose backends point at the instances, result files, and the archives already made.
  - Decides the stage's state (none, live, retired, mixed) and the free space an archive needs. Changes nothing.
options:
  units:
    description: Units to consider; empty finds every unit whose ExecStart runs ollama serve.
    type: list
    elements: str
    default: []
  result_globs:
    description: Globs of result files or folders to archive.
    type: list
    elements: str
    default: []
  haproxy_config:
    description: HAProxy config to read; empty leaves HAProxy out.
    type: str
    default: ''
  nvidia_smi:
    description: nvidia-smi to ask for GPU processes (name or path).
    type: str
    default: nvidia-smi
  archive_root:
    description: Folder holding the archives.
    type: str
    required: true
  blob_mode:
    description: in_place, copy or move (for the space needed).
    type: str
    default: in_place
  check_blob_digests:
    description: Hash every referenced blob and compare it with its name.
    type: bool
    default: true
  reserve_mb:
    description: Free space to leave on the archive's file system.
    type: int
    default: 256
  probe_allowance_mb:
    description: Space set aside for the probe's reports.
    type: int
    default: 16
  api_timeout:
    description: Seconds for each API call to an instance.
    type: int
    default: 5
  frontend_action:
    description: repoint or remove.
    type: str
    default: repoint
  successor_backend:
    description: HAProxy backend name for the successor.
    type: str
    default: vllm
  successor_address:
    description: host:port of the successor for HAProxy.
    type: str
    default: '127.0.0.1:8000'
  successor_url:
    description: Address students use after the move (empty derives it).
    type: str
    default: ''
  successor_model:
    description: Model name to mention in the retirement message.
    type: str
    default: ''
  public_host:
    description: Host name of the box as students reach it.
    type: str
    default: ''
author: Classroom Cluster
"""

RETURN = r"""
discovery:
  description: instances, stores, binary, gpu, haproxy (with the retirement plan), results, archives,
    state, reuse_archive, files (what an archive holds), plan (space), probe (url and model), problems.
  returned: always
  type: dict
"""

import glob
import hashlib
import json
import os
import pwd
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ollama_archive_haproxy import Successor, bind_client_url, bind_port, retire
from ansible.module_utils.ollama_archive_manifest import (
    FileEntry,
    choose,
    list_archives,
    load_manifest,
    sha256_file,
    tar_members,
)
from ansible.module_utils.ollama_archive_store import default_models_dir, scan_store
from ansible.module_utils.ollama_archive_units import (
    SHOW_PROPERTIES,
    OllamaHost,
    UnitShow,
    effective_environment,
    mask_kind,
    ollama_binary,
    parse_ollama_host,
    parse_show,
    redact_environment,
    retired_by_dropin,
    runs_ollama_serve,
    unit_kind,
)

SHOW_CHUNK = 150
PROC = Path("/proc")
# Effective values a running server read at start win over what the unit files say now.
_LIVE_KEYS = ("OLLAMA_", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")
_MANIFEST_OVERHEAD = 64 * 1024
_PER_FILE_OVERHEAD = 2048


def run(module: AnsibleModule, argv: list[str]) -> tuple[int, str, str]:
    rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C", "SYSTEMD_COLORS": "0"})
    return rc, out, err


def candidate_units(module: AnsibleModule, systemctl: str) -> list[str]:
    names: set[str] = set()
    _, out, _ = run(module, [systemctl, "list-units", "--all", "--type=service", "--plain", "--no-legend",
                             "--no-pager"])
    for line in out.splitlines():
        words = [w for w in line.split() if w not in ("●", "*")]
        if words and words[0].endswith(".service"):
            names.add(words[0])
    _, out, _ = run(module, [systemctl, "list-unit-files", "--type=service", "--no-legend", "--no-pager"])
    for line in out.splitlines():
        words = line.split()
        if words and words[0].endswith(".service") and not words[0].endswith("@.service"):
            names.add(words[0])
    # Enabled or masked template instances that are not loaded yet.
    for pattern in ("/etc/systemd/system/*.wants/*@*.service", "/etc/systemd/system/*@*.service",
                    "/run/systemd/system/*.service"):
        for path in glob.glob(pattern):
            name = os.path.basename(path)
            if not name.endswith("@.service"):
                names.add(name)
    return sorted(names)


def show(module: AnsibleModule, systemctl: str, names: list[str]) -> list[UnitShow]:
    units: list[UnitShow] = []
    for start in range(0, len(names), SHOW_CHUNK):
        chunk = names[start : start + SHOW_CHUNK]
        rc, out, err = run(module, [systemctl, "show", "-p", ",".join(SHOW_PROPERTIES), "--", *chunk])
        if rc != 0:
            module.fail_json(msg=f"systemctl show failed (exit {rc}): {err.strip()}")
        units += parse_show(out)
    return units


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def proc_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key.startswith(_LIVE_KEYS):
            env[key] = value
    return env


def user_home(user: str) -> str:
    try:
        return pwd.getpwnam(user or "root").pw_dir
    except KeyError:
        return "/root"


def get_json(url: str, timeout: int) -> tuple[Any, str]:
    try:
        with urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read()), ""
    except (URLError, OSError, ValueError) as exc:
        return None, f"{url}: {exc}"


def instance_facts(unit: UnitShow, api_timeout: int) -> tuple[dict[str, Any], list[str]]:
    files = {ref.path: read_text(ref.path) for ref in unit.environment_files}
    env, problems = effective_environment(unit, files)
    live = proc_environ(unit.main_pid) if unit.main_pid else {}
    env.update(live)
    home = env.get("HOME") or user_home(unit.user)
    models_dir = env.get("OLLAMA_MODELS") or default_models_dir(home)
    host = parse_ollama_host(env.get("OLLAMA_HOST"))
    facts: dict[str, Any] = {
        "unit": unit.name,
        "kind": unit_kind(unit.name),
        "state": {
            "load": unit.load_state,
            "active": unit.active_state,
            "sub": unit.sub_state,
            "enabled": unit.unit_file_state,
        },
        "mask": mask_kind(unit.name, unit.fragment_path),
        "fragment": unit.fragment_path,
        "drop_ins": unit.drop_in_paths,
        "environment_files": [{"path": r.path, "ignore_errors": r.ignore_errors, "exists": files[r.path] is not None}
                              for r in unit.environment_files],
        "exec_start": unit.exec_start,
        "user": unit.user or "root",
        "home": home,
        "environment": redact_environment(env),
        "environment_source": "process" if live else "unit files",
        "url": host.url,
        "scheme": host.scheme,
        "host": host.host,
        "port": host.port,
        "gpus": env.get("CUDA_VISIBLE_DEVICES", ""),
        "models_dir": models_dir,
        "binary": ollama_binary(unit),
        "main_pid": unit.main_pid,
        "api": {},
    }
    if unit.active_state == "active":
        version, error = get_json(f"{host.url}/api/version", api_timeout)
        tags, tags_error = get_json(f"{host.url}/api/tags", api_timeout)
        ps, ps_error = get_json(f"{host.url}/api/ps", api_timeout)
        facts["api"] = {
            "version": version.get("version", "") if isinstance(version, dict) else "",
            "tags": [{"name": m.get("name"), "digest": m.get("digest"), "size": m.get("size"),
                      "modified_at": m.get("modified_at")}
                     for m in (tags or {}).get("models", []) if isinstance(m, dict)] if isinstance(tags, dict) else [],
            "ps": [{"name": m.get("name"), "size": m.get("size"), "size_vram": m.get("size_vram")}
                   for m in (ps or {}).get("models", []) if isinstance(m, dict)] if isinstance(ps, dict) else [],
            "answers": not (error or tags_error),
            "errors": [e for e in (error, tags_error, ps_error) if e],
        }
    return facts, problems


def binary_facts(module: AnsibleModule, path: str, url: str) -> dict[str, Any]:
    resolved = path if os.path.isabs(path) else (shutil.which(path) or path)
    facts: dict[str, Any] = {"path": resolved, "version": "", "sha256": "", "size": None}
    if not os.path.isfile(resolved):
        facts["error"] = "not found"
        return facts
    st = os.stat(resolved)
    facts["size"] = st.st_size
    if st.st_size < 512 * 1024 * 1024:
        facts["sha256"] = sha256_file(resolved)
    env = {"OLLAMA_HOST": url} if url else {}
    _, out, err = module.run_command([resolved, "--version"], environ_update=env)
    for line in (out + "\n" + err).splitlines():
        for marker in ("ollama version is ", "client version is "):
            if marker in line:
                facts["version"] = line.split(marker, 1)[1].strip()
                break
        if facts["version"]:
            break
    return facts


def gpu_facts(module: AnsibleModule, nvidia_smi: str, pids: dict[int, str]) -> dict[str, Any]:
    path = nvidia_smi if os.path.isabs(nvidia_smi) else shutil.which(nvidia_smi)
    if not path or not os.path.exists(path):
        return {"available": False, "reason": f"{nvidia_smi} not found on this box", "processes": []}
    rc, out, err = module.run_command([path, "--query-compute-apps=pid,process_name,used_memory,gpu_uuid",
                                       "--format=csv,noheader,nounits"])
    if rc != 0:
        return {"available": False, "reason": f"nvidia-smi failed (exit {rc}): {(err or out).strip()[:200]}",
                "processes": []}
    procs = []
    for line in out.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 4 or not cols[0].isdigit():
            continue
        pid = int(cols[0])
        used = int(cols[2]) if cols[2].isdigit() else None
        procs.append({"pid": pid, "name": cols[1], "used_mib": used, "gpu_uuid": cols[3], "unit": unit_of(pid, pids)})
    return {"available": True, "reason": "", "processes": procs}


def unit_of(pid: int, units: dict[int, str]) -> str:
    """The Ollama unit a process belongs to: runners are children in the unit's cgroup."""
    try:
        cgroup = (PROC / str(pid) / "cgroup").read_text()
    except OSError:
        return ""
    for name in units.values():
        if f"/{name}" in cgroup:
            return name
    return ""


def result_files(globs: list[str]) -> list[str]:
    found: set[str] = set()
    for pattern in globs:
        for match in glob.glob(pattern):
            if os.path.isfile(match):
                found.add(os.path.abspath(match))
            elif os.path.isdir(match):
                for folder, _, files in os.walk(match):
                    found.update(os.path.join(folder, f) for f in files)
    return sorted(found)


def nearest_existing(path: str) -> Path:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def space_plan(root: str, needed: int, reserve: int, *, blob_bytes: int, blob_mode: str,
               stores: list[str]) -> dict[str, Any]:
    base = nearest_existing(root)
    st = os.statvfs(base)
    readonly = bool(st.f_flag & os.ST_RDONLY)
    writable = not readonly and os.access(base, os.W_OK)
    free = st.f_bavail * st.f_frsize
    same_fs = all(os.path.exists(s) and os.stat(s).st_dev == os.stat(base).st_dev for s in stores)
    blobs = 0 if blob_mode == "in_place" or (blob_mode == "move" and same_fs) else blob_bytes
    total = needed + blobs
    return {
        "root": root,
        "checked_at": str(base),
        "free_bytes": free,
        "needed_bytes": total,
        "blob_bytes": blobs,
        "reserve_bytes": reserve,
        "readonly": readonly,
        "writable": writable,
        "enough": free - total >= reserve,
    }


def archive_files(instances: list[dict[str, Any]], stores: list[dict[str, Any]], haproxy: str,
                  results: list[str]) -> list[dict[str, Any]]:
    files: dict[str, str] = {}
    for inst in instances:
        if inst["fragment"] and os.path.isfile(inst["fragment"]):
            files.setdefault(inst["fragment"], "unit")
        for drop_in in inst["drop_ins"]:
            if os.path.isfile(drop_in):
                files.setdefault(drop_in, "drop-in")
        for ref in inst["environment_files"]:
            if ref["exists"]:
                files.setdefault(ref["path"], "environment")
        for key in ("id_ed25519", "id_ed25519.pub"):
            path = os.path.join(inst["home"], ".ollama", key)
            if os.path.isfile(path):
                files.setdefault(path, "key")
    for store in stores:
        for model in store["models"]:
            files.setdefault(os.path.join(store["path"], model["manifest"]), "manifest")
    if haproxy and os.path.isfile(haproxy):
        files.setdefault(haproxy, "haproxy")
    for path in results:
        files.setdefault(path, "result")
    return [{"path": p, "kind": k, "size": os.path.getsize(p)} for p, k in sorted(files.items())]


def current(manifest: dict[str, Any], live: list[dict[str, Any]], files: list[dict[str, Any]]) -> bool:
    """Does the newest archive still describe these instances (same units, unchanged config files)?"""
    archived_units = {i["unit"] for i in manifest.get("instances", [])}
    if not {i["unit"] for i in live} <= archived_units:
        return False
    recorded = {raw["path"]: FileEntry.from_json(raw) for raw in manifest.get("files", [])}
    for item in files:
        if item["kind"] in ("unit", "drop-in", "environment"):
            entry = recorded.get(item["path"])
            if entry is None or entry.differs_on_disk() in ("missing", "content"):
                return False
    return True


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "units": {"type": "list", "elements": "str", "default": []},
    "result_globs": {"type": "list", "elements": "str", "default": []},
    "haproxy_config": {"type": "str", "default": ""},
    "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
    "archive_root": {"type": "str", "required": True},
    "blob_mode": {"type": "str", "default": "in_place", "choices": ["in_place", "copy", "move"]},
    "check_blob_digests": {"type": "bool", "default": True},
    "reserve_mb": {"type": "int", "default": 256},
    "probe_allowance_mb": {"type": "int", "default": 16},
    "api_timeout": {"type": "int", "default": 5},
    "frontend_action": {"type": "str", "default": "repoint", "choices": ["repoint", "remove"]},
    "successor_backend": {"type": "str", "default": "vllm"},
    "successor_address": {"type": "str", "default": "127.0.0.1:8000"},
    "successor_url": {"type": "str", "default": ""},
    "successor_model": {"type": "str", "default": ""},
    "public_host": {"type": "str", "default": ""},
}


@dataclass
class Archived:
    """The newest complete archive, as far as discovery needs it."""

    path: str = ""
    manifest: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def newest(cls, root: str) -> Archived:
        ref, _ = choose(root, "")
        if ref is None:
            return cls()
        manifest, problems = load_manifest(ref.path)
        return cls(ref.path, manifest, problems)

    @property
    def units(self) -> list[str]:
        return [i["unit"] for i in (self.manifest or {}).get("instances", [])]

    def haproxy_text(self) -> str:
        entry = next((f for f in (self.manifest or {}).get("files", []) if f["kind"] == "haproxy"), None)
        if entry is None:
            return ""
        data: bytes = tar_members(Path(self.path))[entry["member"]]
        return data.decode(errors="replace")


def store_facts(instances: list[dict[str, Any]], check_digests: bool) -> list[dict[str, Any]]:
    stores = [scan_store(path, check_digests).to_json() for path in sorted({i["models_dir"] for i in instances})]
    for store in stores:
        store["instances"] = [i["unit"] for i in instances if i["models_dir"] == store["path"]]
        store["referenced"] = sorted({la["digest"].replace(":", "-", 1) for m in store["models"] for la in m["layers"]})
    return stores


def decide(instances: list[dict[str, Any]], archived: Archived, masked: set[str],
           files: list[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """state (none, live, retired, mixed), the archive to reuse, and the archived units now masked.

    An archive that still describes the live instances (a retirement that stopped half-way) is reused
    rather than made again; masked units of an archive beside live ones it does not describe are mixed.
    """
    retired = [u for u in archived.units if u in masked]
    reuse = ""
    if instances and archived.manifest is not None and current(archived.manifest, instances, files):
        reuse = archived.path
    if instances and retired and not reuse:
        return "mixed", reuse, retired
    if instances:
        return "live", reuse, retired
    if archived.units:
        return "retired", reuse, retired
    return "none", reuse, retired


def haproxy_facts(p: dict[str, Any], state: str, reuse: str, instances: list[dict[str, Any]],
                  archived: Archived) -> dict[str, Any]:
    """The HAProxy config and its retirement plan. The original config is what retirement transforms;
    once retirement began the box may run the transformed one, so then it comes from the archive."""
    path = p["haproxy_config"]
    facts: dict[str, Any] = {"path": path, "exists": bool(path) and os.path.isfile(path),
                             "ollama_backends": [], "mixed_backends": [], "ollama_frontends": [],
                             "ollama_servers": [], "frontend_binds": [], "gateway": {}, "problems": [],
                             "client_url": "", "successor_url": p["successor_url"]}
    hosts = [parse_ollama_host(i["environment"].get("OLLAMA_HOST")) for i in instances]
    if (state == "retired" or reuse) and archived.manifest is not None:
        text = archived.haproxy_text()
        hosts += [OllamaHost(i["scheme"], i["host"], i["port"]) for i in archived.manifest["instances"]]
    else:
        text = Path(path).read_text(errors="replace") if facts["exists"] else ""
    if facts["exists"]:
        facts["sha256"] = sha256_file(path)
    if not text:
        return facts
    successor = Successor(p["frontend_action"], p["successor_backend"], p["successor_address"], "",
                          p["successor_model"])
    first = retire(text, hosts, successor)
    port = next((bind_port(b) for b in first.frontend_binds if bind_port(b)), None)
    url = p["successor_url"] or (f"http://{p['public_host']}:{port}/v1" if port and p["public_host"] else "")
    plan = retire(text, hosts, replace(successor, url=url or f"the {p['successor_backend']} service"))
    facts.update(plan.to_json())
    facts["successor_url"] = url
    facts["original_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    facts["client_url"] = bind_client_url(plan.frontend_binds[0]) if plan.frontend_binds else ""
    return facts


def probe_target(haproxy: dict[str, Any], running: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the probe loads Ollama (the students' address first) and a model every instance lists."""
    common: set[str] | None = None
    for inst in running:
        names_here = {t["name"] for t in inst["api"].get("tags", [])}
        common = names_here if common is None else common & names_here
    return {
        "url": haproxy.get("client_url") or (running[0]["url"] if running else ""),
        "model": sorted(common)[0] if common else "",
        "answering": [i["unit"] for i in running if i["api"].get("answers")],
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    systemctl = module.get_bin_path("systemctl", required=True)
    shown = show(module, systemctl, p["units"] or candidate_units(module, systemctl))
    problems: list[str] = []
    instances = []
    for unit in (u for u in shown if u.load_state == "loaded" and runs_ollama_serve(u) and not retired_by_dropin(u)):
        facts, found = instance_facts(unit, p["api_timeout"])
        instances.append(facts)
        problems += found
    masked = {u.name for u in shown if u.load_state == "masked" or retired_by_dropin(u)}
    archived = Archived.newest(p["archive_root"])
    problems += archived.problems

    stores = store_facts(instances, p["check_blob_digests"])
    running = [i for i in instances if i["state"]["active"] == "active"]
    binaries = sorted({i["binary"] for i in instances if i["binary"]})
    binary = binary_facts(module, binaries[0], running[0]["url"] if running else "") if binaries else {}
    gpu = gpu_facts(module, p["nvidia_smi"], {i["main_pid"]: i["unit"] for i in instances if i["main_pid"]})
    for inst in instances:
        inst["gpu_memory_mib"] = sum(int(x["used_mib"] or 0) for x in gpu["processes"] if x["unit"] == inst["unit"])
    results = result_files(p["result_globs"])
    haproxy_path = p["haproxy_config"] if p["haproxy_config"] and os.path.isfile(p["haproxy_config"]) else ""
    files = archive_files(instances, stores, haproxy_path, results)
    state, reuse, retired = decide(instances, archived, masked, files)
    haproxy = haproxy_facts(p, state, reuse, instances, archived)
    problems += haproxy["problems"]

    needed = (sum(f["size"] for f in files) + _MANIFEST_OVERHEAD + _PER_FILE_OVERHEAD * len(files)
              + p["probe_allowance_mb"] * 1024 * 1024)
    plan = space_plan(p["archive_root"], needed, p["reserve_mb"] * 1024 * 1024,
                      blob_bytes=sum(s["blob_bytes"] for s in stores), blob_mode=p["blob_mode"],
                      stores=[s["path"] for s in stores])
    discovery = {
        "state": state,
        "instances": instances,
        "live": [i["unit"] for i in instances],
        "retired": retired,
        "archived_units": archived.units,
        "masked": sorted(masked),
        "reuse_archive": reuse,
        "archives": [{"path": a.path, "name": a.name, "complete": a.complete}
                     for a in list_archives(p["archive_root"])],
        "newest_archive": archived.path,
        "stores": stores,
        "store_problems": [x for s in stores for x in s["problems"]],
        "binary": binary,
        "gpu": gpu,
        "haproxy": haproxy,
        "results": results,
        "files": files,
        "plan": plan,
        "probe": probe_target(haproxy, running),
        "problems": problems,
        "checked_blob_digests": p["check_blob_digests"],
    }
    module.exit_json(changed=False, discovery=discovery)


if __name__ == "__main__":
    main()
