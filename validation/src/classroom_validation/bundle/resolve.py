"""The exact wheels a group of requirements needs on the target host, resolved by pip for that host's
Python and platform (pip's own resolver, `install --dry-run --report`), then downloaded one by one."""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from classroom_validation.bundle.command import run
from classroom_validation.bundle.spec import BundleError

# glibc versions that older manylinux tags stand for (PEP 600).
LEGACY_MANYLINUX = ((17, "manylinux2014"), (12, "manylinux2010"), (5, "manylinux1"))
LEGACY_ARCHES = {"manylinux2014": ("x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l"),
                 "manylinux2010": ("x86_64", "i686"), "manylinux1": ("x86_64", "i686")}


@dataclass(frozen=True)
class Target:
    """The host the bundle is for: its Python (major.minor), glibc and CPU architecture."""

    python_version: str
    glibc: str
    arch: str

    @classmethod
    def this_machine(cls) -> Target:
        libc, version = platform.libc_ver()
        if libc != "glibc" or not version:
            raise BundleError("this machine's glibc is unknown: give --glibc (on the host: ldd --version)")
        return cls(f"{sys.version_info[0]}.{sys.version_info[1]}", version, platform.machine())

    def platforms(self) -> list[str]:
        """Every manylinux tag a wheel for this host may carry, newest first."""
        try:
            major, minor = (int(x) for x in self.glibc.split(".")[:2])
        except ValueError as exc:
            raise BundleError(f"glibc version {self.glibc!r} is not MAJOR.MINOR, e.g. 2.35") from exc
        if major != 2 or minor < 5:
            raise BundleError(f"glibc {self.glibc}: manylinux wheels need glibc 2.5 or newer")
        tags = [f"manylinux_2_{m}_{self.arch}" for m in range(minor, 4, -1)]
        tags += [f"{legacy}_{self.arch}" for since, legacy in LEGACY_MANYLINUX
                 if minor >= since and self.arch in LEGACY_ARCHES[legacy]]
        return tags

    def pip_args(self) -> list[str]:
        args = ["--python-version", self.python_version, "--implementation", "cp", "--only-binary=:all:"]
        for tag in self.platforms():
            args += ["--platform", tag]
        return args

    def marker_env(self) -> dict[str, str]:
        return {"python_version": self.python_version, "python_full_version": f"{self.python_version}.0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                "platform_machine": self.arch, "platform_release": "", "platform_version": "", "extra": ""}


@dataclass(frozen=True)
class Dist:
    """One distribution pip chose: canonical name, version, where it comes from, what it requires."""

    name: str
    version: str
    url: str
    requires: tuple[str, ...]

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def resolve(requirements: list[str], target: Target, pip_args: list[str], python: str = sys.executable) -> list[Dist]:
    """pip's resolution of `requirements` (strings or wheel paths) for the target, downloading no wheel."""
    with tempfile.TemporaryDirectory(prefix="bundle-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "--report", str(report), "--target", str(Path(tmp) / "target"),
                   *target.pip_args(), *pip_args, *requirements]
        what = (f"pip resolving {' '.join(requirements)} for Python {target.python_version} on {target.arch} "
                f"(glibc {target.glibc})")
        run(command, what)
        if not report.is_file():
            raise BundleError(f"{what} wrote no report")
        doc = json.loads(report.read_text())
    dists = []
    for item in doc.get("install") or []:
        meta = item.get("metadata") or {}
        dists.append(Dist(canonicalize_name(meta["name"]), str(Version(str(meta["version"]))),
                          str((item.get("download_info") or {}).get("url", "")),
                          tuple(meta.get("requires_dist") or [])))
    return dists


def parse_installed(text: str) -> dict[str, str]:
    """`pip list --format=freeze` (or `pip freeze`) output: canonical name -> version; other lines ignored."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and version and not name.startswith(("#", "-")):
            found[str(canonicalize_name(name))] = version.strip()
    return found


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None  # a wheel path given directly


def _applies(req: Requirement, env: dict[str, str], extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def _satisfies(version: str, specifiers: list[SpecifierSet]) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return all(s.contains(parsed, prereleases=True) for s in specifiers)


@dataclass(frozen=True)
class Pruned:
    kept: list[Dist]
    installed: list[str]  # name==version left out because the host has an accepted version
    excluded: list[str]  # left out on purpose (the spec's exclude list)


def prune(dists: list[Dist], requirements: list[str], local: set[str], target: Target, *,
          installed: dict[str, str], exclude: Iterable[str] = ()) -> Pruned:
    """Leave out what the host has at a version every requirement on it accepts (never the project's own
    `local` packages) and the spec's exclusions; keep only what the requirements still reach through what
    is kept."""
    env = target.marker_env()
    by_name = {d.name: d for d in dists}
    reqs = [r for r in map(_requirement, requirements) if r is not None]
    extras: dict[str, set[str]] = {}
    for req in reqs:
        extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    specifiers: dict[str, list[SpecifierSet]] = {}
    edges: dict[str, set[str]] = {}
    for req in reqs:
        specifiers.setdefault(canonicalize_name(req.name), []).append(req.specifier)
    # An extra asked for by a distribution visited later can switch on requirements of one visited earlier
    # (vllm -> pydantic-extra-types[pycountry] -> pycountry): repeat until no extra is added.
    grown = True
    while grown:
        grown = False
        for dist in dists:
            for req in filter(None, map(_requirement, dist.requires)):
                if _applies(req, env, extras.get(dist.name, ())):
                    name = canonicalize_name(req.name)
                    edges.setdefault(dist.name, set()).add(name)
                    known = extras.setdefault(name, set())
                    grown |= not set(req.extras) <= known
                    known.update(req.extras)
    for dist in dists:
        for req in filter(None, map(_requirement, dist.requires)):
            if _applies(req, env, extras.get(dist.name, ())):
                specifiers.setdefault(canonicalize_name(req.name), []).append(req.specifier)
    excluded = {canonicalize_name(n) for n in exclude}
    have = {d.name for d in dists if d.name in installed and d.name not in local
            and _satisfies(installed[d.name], specifiers.get(d.name, []))}
    roots = local | {str(canonicalize_name(r.name)) for r in reqs}
    kept: list[str] = []
    todo: list[str] = [n for n in sorted(roots) if n in by_name]
    while todo:
        current = todo.pop()
        if current in kept or current in have or current in excluded:
            continue
        kept.append(current)
        todo.extend(sorted(n for n in edges.get(current, set()) if n in by_name))
    return Pruned([by_name[n] for n in sorted(kept)],
                  sorted(f"{n}=={installed[n]}" for n in have),
                  sorted(n for n in excluded if n in by_name))


def wheel_key(path: Path) -> tuple[str, str] | None:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        return None
    return str(name), str(version)


def download(dists: list[Dist], dest: Path, target: Target, pip_args: list[str],
             python: str = sys.executable) -> dict[str, Path]:
    """The wheel file of each pinned distribution in `dest` (downloaded there when missing): pin -> path."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [d for d in dists if d.pin not in _wheels_in(dest)]
    if missing:
        command = [python, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                   "--dest", str(dest), *target.pip_args(), *pip_args, *(d.pin for d in missing)]
        run(command, f"pip downloading {len(missing)} wheels")
    found = _wheels_in(dest)
    lost = [d.pin for d in dists if d.pin not in found]
    if lost:
        raise BundleError(f"no wheel in {dest} for {', '.join(lost)}")
    return {d.pin: found[d.pin] for d in dists}


def _wheels_in(folder: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(folder.glob("*.whl")):
        key = wheel_key(path)
        if key:
            out[f"{key[0]}=={key[1]}"] = path
    return out
