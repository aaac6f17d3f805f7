"""OLLAMA_TEST_REPORT.md: what was found and measured on the box before Ollama was retired.

Everything in it comes from the archive's manifest (read on the box) and the probe's report of the
"before" run; nothing is copied from elsewhere. Where a figure could not be measured, it says so.
"""

from __future__ import annotations

from typing import Any

MIB = 1024 * 1024


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _cell(text: object) -> str:
    return str(text if text not in (None, "") else "-").replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render(manifest: dict[str, Any], probe: dict[str, Any] | None, probe_path: str) -> str:
    host = manifest.get("host", "")
    instances = manifest.get("instances", [])
    lines = [
        f"# Ollama on {host}: what ran before the move",
        "",
        f"Written by the `ollama_archive` role at {manifest.get('created_at', '')} into the archive "
        f"`{manifest.get('archive', '')}` (`MANIFEST.json` lists every archived file with its sha256). Every "
        "figure below was read or measured on this box at that time.",
        "",
        "## Instances",
        "",
    ]
    rows = []
    for inst in instances:
        env = inst.get("environment", {})
        rows.append([
            f"`{inst['unit']}`",
            f"{inst['state'].get('active')} / {inst['state'].get('enabled')}",
            inst.get("url"),
            env.get("CUDA_VISIBLE_DEVICES", "(all GPUs)"),
            env.get("OLLAMA_NUM_PARALLEL", "1 (default)"),
            f"`{inst.get('models_dir')}`",
            inst.get("api", {}).get("version") or inst.get("binary_version"),
        ])
    lines += _table(["unit", "state (active / enabled)", "address", "CUDA_VISIBLE_DEVICES", "OLLAMA_NUM_PARALLEL",
                     "models", "version"], rows)
    binary = manifest.get("binary", {})
    lines += ["", f"Binary: `{binary.get('path', '-')}`, `ollama --version`: {binary.get('version') or '-'}."]
    lines += ["", "## Models and the copies they cost", ""]
    lines += _copies(manifest)
    lines += ["", "## GPU memory held by Ollama", ""]
    lines += _gpu(manifest)
    lines += ["", "## The \"before\" measurement", ""]
    lines += _probe(manifest, probe, probe_path)
    lines += ["", "## Store checks", ""]
    problems = [p for store in manifest.get("stores", []) for p in store.get("problems", [])]
    lines += [f"- {p}" for p in problems] or ["- every manifest's blobs are present with the sizes it records"
                                              + (" and their sha256 matches their names"
                                                 if manifest.get("checked_blob_digests") else "")]
    for store in manifest.get("stores", []):
        if store.get("partials"):
            lines.append(f"- `{store['path']}`: {len(store['partials'])} unfinished download(s) (`*-partial*`)")
        if store.get("unreferenced"):
            lines.append(f"- `{store['path']}`: {len(store['unreferenced'])} blob(s) no manifest references")
    lines += ["", "## HAProxy", ""]
    lines += _haproxy(manifest)
    lines += [
        "",
        "## About Ollama's multi-GPU behaviour",
        "",
        "A single Ollama instance does split a model's layers across GPUs when the model does not fit on one "
        "(and always with `OLLAMA_SCHED_SPREAD=1`); what it lacks is tensor parallelism. Instances pinned to "
        "one GPU each with `CUDA_VISIBLE_DEVICES`, as above, each load their own full copy of every model "
        "they serve.",
        "",
    ]
    return "\n".join(lines)


def _copies(manifest: dict[str, Any]) -> list[str]:
    stores = manifest.get("stores", [])
    instances = manifest.get("instances", [])
    by_name: dict[str, dict[str, Any]] = {}
    for store in stores:
        for model in store.get("models", []):
            entry = by_name.setdefault(model["name"], {"size": model["size"], "stores": [], "digests": set(),
                                                       "serving": []})
            entry["stores"].append(store["path"])
            entry["digests"].add(model["digest"])
    # Only instances that ran can hold a copy in memory.
    for inst in (i for i in instances if i.get("state", {}).get("active") == "active"):
        for store in stores:
            if store["path"] != inst.get("models_dir"):
                continue
            for model in store.get("models", []):
                by_name[model["name"]]["serving"].append(inst["unit"])
    rows = []
    for name, entry in sorted(by_name.items()):
        rows.append([
            f"`{name}`",
            _size(entry["size"]),
            len(entry["stores"]),
            "same" if len(entry["digests"]) == 1 else f"{len(entry['digests'])} different",
            len(entry["serving"]),
            _size(entry["size"] * len(entry["serving"])),
        ])
    if not rows:
        return ["No model manifests were found."]
    out = _table(["model", "size", "copies on disk", "manifest digests", "running instances that can load it",
                  "memory if each of them loads it"], rows)
    loaded = [(inst["unit"], m) for inst in instances for m in inst.get("api", {}).get("ps", [])]
    out += ["", "Loaded when the archive was made (`/api/ps`):", ""]
    if loaded:
        out += _table(["unit", "model", "size", "size_vram"],
                      [[f"`{u}`", m.get("name"), _size(m.get("size")), _size(m.get("size_vram"))] for u, m in loaded])
    else:
        out.append("- no instance had a model loaded")
    return out


def _gpu(manifest: dict[str, Any]) -> list[str]:
    gpu = manifest.get("gpu", {})
    if not gpu.get("available"):
        return [f"Not measured: {gpu.get('reason') or 'no nvidia-smi on this box'}."]
    procs = gpu.get("processes", [])
    ours = [p for p in procs if p.get("unit")]
    if not ours:
        return ["nvidia-smi listed no Ollama runner holding GPU memory."]
    rows = [[f"`{p['unit']}`", p.get("pid"), p.get("name"), p.get("gpu_uuid"), f"{p.get('used_mib')} MiB"]
            for p in ours]
    total = sum(int(p.get("used_mib") or 0) for p in ours)
    return [*_table(["unit", "pid", "process", "GPU", "memory"], rows), "",
            f"Total held by Ollama runners: {total} MiB."]


def _probe(manifest: dict[str, Any], probe: dict[str, Any] | None, probe_path: str) -> list[str]:
    measure = manifest.get("measure", {})
    if not probe:
        return [f"Not measured: {measure.get('reason') or 'the measurement was turned off'}."]
    config = probe.get("config", {})
    verdict = probe.get("verdict", {})
    aggregates = probe.get("aggregates", {})
    latency = aggregates.get("latency_ms", {})
    ttft = latency.get("ttft", {}) if isinstance(latency, dict) else {}
    out = [
        f"The concurrency probe against `{config.get('base_url')}` (API `{config.get('api')}`, model "
        f"`{config.get('model')}`, profile `{config.get('profile')}`): {config.get('students')} simulated "
        f"students for {config.get('duration_s')} s after a {config.get('warmup_s')} s warm-up.",
        "",
        f"Verdict: **{str(verdict.get('status', 'missing')).upper()}**. Requests measured: "
        f"{aggregates.get('requests_measured', '-')}, failures: {aggregates.get('failures_total', '-')}, "
        f"output tokens/s: {aggregates.get('output_tok_s', '-')}, TTFT p95: "
        f"{ttft.get('p95', '-') if isinstance(ttft, dict) else '-'} ms.",
        "",
    ]
    rows = [[c.get("name"), c.get("measured"), c.get("limit"),
             {True: "pass", False: "FAIL", None: "skip"}.get(c.get("passed"), "-"), c.get("detail")]
            for c in verdict.get("checks", [])]
    out += _table(["check", "measured", "limit", "result", "detail"], rows)
    out += ["", f"Full report in the archive: `{probe_path}`."]
    return out


def _haproxy(manifest: dict[str, Any]) -> list[str]:
    haproxy = manifest.get("haproxy", {})
    if not haproxy.get("exists"):
        return [f"No HAProxy config at `{haproxy.get('path') or '-'}`."]
    out = [f"Config `{haproxy['path']}` (archived verbatim)."]
    servers = haproxy.get("ollama_servers", [])
    if servers:
        out += ["", *_table(["section", "server", "address"],
                            [[s["section"], s["name"], s["address"]] for s in servers])]
    out += ["", f"Frontends that served Ollama: {', '.join(haproxy.get('ollama_frontends', [])) or 'none'}; "
                f"backends: {', '.join(haproxy.get('ollama_backends', [])) or 'none'}."]
    return out
