"""Which requirements of the carried packages the GPU host does not meet (`python -m hwval.depcheck SITE`).

The carried wheels are installed with --no-deps, so nothing else checks them. Requirements left out on
purpose (torch's companions and GPU-kernel extras a dense model does not load) are listed as such.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

NOT_CARRIED = frozenset(canonicalize_name(n) for n in (
    "torchcodec", "pynvvideocodec", "flashinfer-python", "tilelang", "nvidia-cudnn-frontend", "nvtx",
    "fastsafetensors", "nvidia-cutlass-dsl", "quack-kernels", "tokenspeed-mla", "humming-kernels",
))


@dataclass(frozen=True)
class Problem:
    dist: str
    requirement: str
    found: str | None
    expected_gap: bool


def installed_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for dist in metadata.distributions():  # sys.path order: the first one found is the one imported
        name = canonicalize_name(dist.metadata["Name"] or "")
        versions.setdefault(name, dist.version)
    return versions


def problems(site: Path) -> list[Problem]:
    versions = installed_versions()
    out = []
    for dist in metadata.distributions(path=[str(site)]):
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            found = versions.get(name)
            if found is None or (req.specifier and not req.specifier.contains(found, prereleases=True)):
                out.append(Problem(dist.metadata["Name"], raw, found, name in NOT_CARRIED))
    return out


def main() -> int:
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if site is None or not site.is_dir():
        print("usage: python -m hwval.depcheck SITE_DIR", file=sys.stderr)
        return 2
    found = problems(site)
    for p in found:
        tag = "not carried on purpose" if p.expected_gap else "UNMET"
        print(f"{tag}: {p.dist} needs {p.requirement}; found {p.found or 'nothing'}")
    unmet = [p for p in found if not p.expected_gap]
    print(f"depcheck: {len(unmet)} unmet, {len(found) - len(unmet)} left out on purpose")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
