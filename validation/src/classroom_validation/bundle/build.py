"""Builds an offline bundle from a spec: wheels resolved for the host, model folders, a copy of the project,
a manifest with the sha256 of every file, all in one tar, optionally split into parts of a chosen size.

The output folder receives `<name>.tar` (or `<name>.tar.part-000`, ...), `<name>.tar.sha256` (the whole
tar), `install.py` and `SHA256SUMS` (install.py and every part): what the host needs, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classroom_validation import __version__
from classroom_validation.bundle import debs
from classroom_validation.bundle.command import run
from classroom_validation.bundle.resolve import Pruned, Target, download, prune, resolve, wheel_key
from classroom_validation.bundle.spec import BundleError, BundleSpec, WheelGroup
from classroom_validation.results import now_iso

INSTALLER = Path(__file__).with_name("install.py")
MANIFEST = "manifest.json"
TOKENIZER_SCRIPT = "scripts/build_tokenizer.py"
SKIP_NAMES = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".molecule")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BuildOptions:
    spec: BundleSpec
    repo: Path  # the project root: local packages, models and project paths are relative to it
    target: Target
    installed: dict[str, str] = field(default_factory=dict)  # what the host has (pip list --format=freeze)
    pip_args: tuple[str, ...] = ()  # index options for pip (--index-url, --find-links, --no-index, ...)
    part_size: int | None = None  # bytes per part; None: one tar
    python: str = sys.executable
    release_image: str = ""  # a container image of the host's release, for the spec's [debs]
    container_tool: str = "podman"


@dataclass(frozen=True)
class GroupPlan:
    group: WheelGroup
    requirements: list[str]
    local: dict[str, Path]  # canonical name -> built wheel
    pruned: Pruned


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_size(text: str, minimum: int = 1024 * 1024) -> int:
    """`60M`, `1G`, `512K` (powers of 1024) or a byte count, at least `minimum`."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        size = int(float(number) * factor)
    except ValueError as exc:
        raise BundleError(f"{text!r} is not a size such as 60M, 1G or 500000") from exc
    if size < minimum:
        raise BundleError(f"{text!r} is below {minimum // 1024} KiB")
    return size


def build_local_wheel(project: Path, dest: Path, o: BuildOptions) -> Path:
    """A wheel of a project folder, built from a copy so the working tree gets no build/ or egg-info."""
    if not (project / "pyproject.toml").is_file():
        raise BundleError(f"local package {project} has no pyproject.toml")
    with tempfile.TemporaryDirectory(prefix="bundle-wheel-") as tmp:
        copy = Path(tmp) / project.name
        shutil.copytree(project, copy, ignore=shutil.ignore_patterns(*SKIP_NAMES, "build", "dist"))
        out = Path(tmp) / "out"
        run([o.python, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
             "--wheel-dir", str(out), *o.pip_args, str(copy)], f"building a wheel of {project}")
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1:
            raise BundleError(f"building {project} gave {len(wheels)} wheels, expected one")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def plan(o: BuildOptions, wheels: Path, log: Callable[[str], None]) -> list[GroupPlan]:
    """Resolve every wheel group for the target; the project's own packages are built into `wheels`."""
    built: dict[str, Path] = {}
    plans = []
    for group in o.spec.groups:
        local: dict[str, Path] = {}
        for folder in group.local:
            if folder not in built:
                log(f"building the wheel of {folder}")
                built[folder] = build_local_wheel(o.repo / folder, wheels, o)
            key = wheel_key(built[folder])
            if key is None:
                raise BundleError(f"{built[folder].name} is not a wheel file name")
            local[key[0]] = built[folder]
        requirements = [*group.requirements, *(str(p) for p in local.values())]
        log(f"resolving group {group.name} for Python {o.target.python_version} on {o.target.arch} "
            f"(glibc {o.target.glibc})")
        dists = resolve(requirements, o.target, list(o.pip_args), o.python)
        pruned = prune(dists, list(group.requirements), set(local), o.target,
                       installed=o.installed if group.skip_installed else {}, exclude=o.spec.exclude)
        plans.append(GroupPlan(group, requirements, local, pruned))
    return plans


def describe(plans: list[GroupPlan]) -> list[str]:
    lines = []
    for p in plans:
        lines.append(f"group {p.group.name} ({'installed' if p.group.install else 'wheelhouse only'}): "
                     f"{len(p.pruned.kept)} distributions")
        lines += [f"  {d.pin}{'  (built from the project)' if d.name in p.local else ''}" for d in p.pruned.kept]
        if p.pruned.installed:
            lines.append(f"  left out, the host has them: {', '.join(p.pruned.installed)}")
        if p.pruned.excluded:
            lines.append(f"  left out on purpose: {', '.join(p.pruned.excluded)}")
    return lines


def _project_files(repo: Path, paths: tuple[str, ...]) -> list[str]:
    """The project paths' files, as git sees them when the project is a checkout (ignored files such as
    a vault stay out), else every file under them."""
    if not paths:
        return []  # git ls-files with no path would list the whole checkout
    for path in paths:
        if not (repo / path).exists():
            raise BundleError(f"project path {path} does not exist in {repo}")
    done = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard", "--", *paths],
                          capture_output=True, check=False)
    if done.returncode == 0:
        return sorted(f for f in done.stdout.decode().split("\0") if f and (repo / f).is_file())
    files = []
    for path in paths:
        root = repo / path
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files += [str(p.relative_to(repo)) for p in candidates
                  if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(repo).parts)]
    return sorted(files)


def _copy_models(o: BuildOptions, dest: Path, log: Callable[[str], None]) -> list[str]:
    names = []
    for model in o.spec.models:
        source = o.repo / model.source
        if not (source / "config.json").is_file():
            raise BundleError(f"model folder {model.source} has no config.json")
        target = dest / model.name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIP_NAMES))
        if model.tokenizer and not (target / "tokenizer.json").is_file():
            vocab = json.loads((source / "config.json").read_text()).get("vocab_size")
            if not isinstance(vocab, int) or vocab < 8:
                raise BundleError(f"{model.source}/config.json has no usable vocab_size for the tokenizer")
            log(f"building a word-level tokenizer of {vocab} tokens for {model.name}")
            run([o.python, str(o.repo / TOKENIZER_SCRIPT), "--vocab-size", str(vocab), "--out", str(target)],
                f"building the tokenizer of {model.name}")
        names.append(f"models/{model.name}")
    return names


def _download_debs(o: BuildOptions, dest: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The spec's [debs] for the host's release; an empty record when the spec has none."""
    if o.spec.debs is None:
        return {}
    packages = sorted({*o.spec.debs.packages, *(debs.role_packages(o.repo) if o.spec.debs.from_roles else [])})
    files = debs.download(dest, o.release_image, packages, o.container_tool, log)
    return {"release_image": o.release_image, "packages": packages, "files": len(files), "folder": "debs"}


def _tar(staging: Path, tar_path: Path) -> None:
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(staging.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(staging)), recursive=False, filter=clean)


def _split(tar_path: Path, part_size: int) -> list[Path]:
    parts: list[Path] = []
    with tar_path.open("rb") as src:
        while True:
            part = tar_path.with_name(f"{tar_path.name}.part-{len(parts):03d}")
            written = 0
            with part.open("wb") as dst:
                while written < part_size:
                    block = src.read(min(CHUNK, part_size - written))
                    if not block:
                        break
                    dst.write(block)
                    written += len(block)
            if written == 0:
                part.unlink()
                break
            parts.append(part)
    tar_path.unlink()
    return parts


def build(o: BuildOptions, out: Path, log: Callable[[str], None]) -> list[Path]:
    """Write the bundle into `out` (new or empty; nothing is overwritten); the files written there."""
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty: give a new or empty folder, nothing is overwritten")
    if o.spec.debs is not None and not o.release_image:
        raise BundleError("the spec carries operating-system packages ([debs]): give --release-image, a container "
                          "image of the host's release (e.g. docker.io/library/ubuntu:24.04)")
    out.mkdir(parents=True, exist_ok=True)
    name = o.spec.name
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out) as tmp:
        staging = Path(tmp)
        wheels = staging / "wheels"
        plans = plan(o, wheels, log)
        for line in describe(plans):
            log(line)
        groups: list[dict[str, Any]] = []
        for p in plans:
            index = [d for d in p.pruned.kept if d.name not in p.local]
            log(f"downloading {len(index)} wheels of group {p.group.name}")
            files = download(index, wheels, o.target, list(o.pip_args), o.python)
            files |= {d.pin: p.local[d.name] for d in p.pruned.kept if d.name in p.local}
            groups.append({"name": p.group.name, "install": p.group.install,
                           "requirements": list(p.group.requirements),
                           "wheels": sorted(f"wheels/{path.name}" for path in files.values()),
                           "left_out_installed": p.pruned.installed, "left_out_excluded": p.pruned.excluded})
        models = _copy_models(o, staging / "models", log)
        carried_debs = _download_debs(o, staging / "debs", log)
        for rel in _project_files(o.repo, o.spec.project):
            (staging / "project" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(o.repo / rel, staging / "project" / rel)
        shutil.copy2(INSTALLER, staging / "install.py")
        listing = {str(p.relative_to(staging)): {"sha256": sha256_file(p), "size": p.stat().st_size}
                   for p in sorted(staging.rglob("*")) if p.is_file()}
        manifest = {"format": 1, "name": name, "created_at": now_iso(),
                    "built_by": f"classroom_validation {__version__}",
                    "target": {"python_version": o.target.python_version, "glibc": o.target.glibc,
                               "arch": o.target.arch},
                    "groups": groups, "excluded": list(o.spec.exclude), "models": models, "debs": carried_debs,
                    "project": "project" if o.spec.project else "", "files": listing}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        tar_path = out / f"{name}.tar"
        log(f"writing {tar_path.name}")
        _tar(staging, tar_path)
    whole = sha256_file(tar_path)
    (out / f"{name}.tar.sha256").write_text(f"{whole}  {tar_path.name}\n")
    carried = _split(tar_path, o.part_size) if o.part_size else [tar_path]
    installer = Path(shutil.copy2(INSTALLER, out / "install.py"))
    sums = [f"{sha256_file(p)}  {p.name}" for p in [installer, *carried]]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return [installer, out / "SHA256SUMS", out / f"{name}.tar.sha256", *carried]

