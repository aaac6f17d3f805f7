#!/usr/bin/env python3
"""Builds, checks and splits the offline bundle that lets site.yml install on an air-gapped box.

    python3 scripts/offline_bundle.py build --out DIR --release-image IMAGE --probe-wheelhouse DIR \\
        (--vllm-wheelhouse DIR | --vllm SPEC --python-version X.Y [--platform TAG ...]) \\
        [--model DIR] [--package NAME ...] [--split-size 2G]
    python3 scripts/offline_bundle.py verify DIR       # every file against SHA256SUMS
    python3 scripts/offline_bundle.py join PARTS_DIR --out DIR   # parts back into the folder, checked

Run it on a machine that reaches PyPI and the box's distribution mirror. The bundle folder holds:

    wheels/vllm/   the engine and its dependencies, for the box's Python and platform
    wheels/probe/  the probe's wheel and its dependencies (scripts/build-probe-wheelhouse.sh)
    debs/          the operating-system packages the roles install that the release image lacks, with
                   their dependencies and a flat-repository Packages index (downloaded inside IMAGE, a
                   container of the box's release, so versions and dependencies are the release's)
    models/NAME/   the model folder (vllm_server_model_source: path)
    SHA256SUMS     every file's checksum, `sha256sum -c` format; manifest.json says what and for what

The `offline_bundle` role checks SHA256SUMS on the box before anything is installed from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
FORMAT = 1
SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
PARTS_SUMS = "PARTS.sha256"
CHUNK = 1 << 20
# Packages the roles install besides those their argument specs name: Ansible's apt module needs
# python3-apt on the box, and vllm_server's optional firewall needs nftables.
EXTRA_PACKAGES = ("python3-apt", "nftables")
# Role variables whose spec default names a package the role installs with apt.
PACKAGE_VARIABLES = (
    ("vllm_server", "vllm_server_system_packages"),
    ("gateway", "gateway_package"),
)


class BundleError(Exception):
    """A user-facing problem: printed as one line, never as a traceback."""


@dataclass(frozen=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    format: int
    created: str
    release_image: str
    python: str
    platforms: list[str]
    vllm: str
    model: str
    packages: list[str]
    contents: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def default_packages(root: Path = ROOT) -> list[str]:
    """The packages named by the roles' argument specs (their one source), plus EXTRA_PACKAGES."""
    # Imported here: `join` and `verify` run on the box, whose Python may lack PyYAML.
    import yaml  # noqa: PLC0415

    names: list[str] = []
    for role, variable in PACKAGE_VARIABLES:
        spec = yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text())
        default = spec["argument_specs"]["main"]["options"][variable]["default"]
        names.extend([default] if isinstance(default, str) else default)
    names.extend(EXTRA_PACKAGES)
    return sorted(set(names))


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise BundleError(f"--split-size {text!r}: give a positive size such as 700M or 4G")
    power = " KMGT".index(match.group(2).upper() or " ")
    count = int(match.group(1))
    return count << (10 * power)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def place(src: Path, dest: Path) -> None:
    """A hard link where source and bundle share a file system (no second copy of a GB), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def copy_tree(src: Path, dest: Path, pattern: str = "*") -> int:
    if not src.is_dir():
        raise BundleError(f"{src} is not a folder")
    files = [p for p in sorted(src.rglob(pattern)) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise BundleError(f"{src} holds no {pattern} files")
    for path in files:
        place(path, dest / path.relative_to(src))
    return len(files)


def run(argv: Sequence[str], what: str) -> None:
    result = subprocess.run(argv, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BundleError(f"{what} failed (exit {result.returncode}):\n{tail}")


def pip_download(dest: Path, spec: str, python_version: str, platforms: Sequence[str]) -> None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--dest",
        str(dest),
    ]
    for tag in platforms:
        argv += ["--platform", tag]
    # Debian's and Ubuntu's python3 have no ensurepip: a pip wheel lets the roles build venvs offline.
    run([*argv, spec, "pip"], f"pip download {spec} for Python {python_version}")


# Runs inside a container of the box's release: downloads what that release lacks of PACKAGES with
# their dependencies, then indexes them as a flat repository (apt-utils is installed after the download,
# so it is not in the bundle unless asked for).
_DEBS_SCRIPT = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
mkdir -p /out/partial
apt-get install -qq -y --no-install-recommends --download-only -o Dir::Cache::archives=/out/ "$@" >/dev/null
rm -rf /out/partial /out/lock
apt-get install -qq -y --no-install-recommends apt-utils >/dev/null 2>&1
cd /out && apt-ftparchive packages . > Packages
"""


def download_debs(dest: Path, image: str, packages: Sequence[str], tool: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run(
        [tool, "run", "--rm", "-v", f"{dest.resolve()}:/out", image, "bash", "-c", _DEBS_SCRIPT, "debs", *packages],
        f"downloading {', '.join(packages)} in {image}",
    )
    if not (dest / "Packages").is_file():
        raise BundleError(f"no Packages index in {dest}")


def walk(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in (SUMS, MANIFEST):
            yield path


def write_sums(folder: Path, manifest: Manifest) -> None:
    lines: list[str] = []
    for path in walk(folder):
        rel = path.relative_to(folder).as_posix()
        lines.append(f"{sha256_file(path)}  {rel}")
        top = "/".join(rel.split("/")[:2]) if rel.count("/") >= 2 else rel.split("/")[0]
        manifest.contents[top] = manifest.contents.get(top, 0) + 1
        manifest.files += 1
        manifest.bytes += path.stat().st_size
    (folder / SUMS).write_text("\n".join(lines) + "\n")
    (folder / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


def verify(folder: Path) -> int:
    """Checks every file against SHA256SUMS and that no file is missing; returns the count."""
    sums = folder / SUMS
    if not sums.is_file():
        raise BundleError(f"{sums} not found: {folder} is not a bundle (or its copy is incomplete)")
    bad: list[str] = []
    count = 0
    for line in sums.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        path = folder / rel
        count += 1
        if not path.is_file():
            bad.append(f"missing: {rel}")
        elif sha256_file(path) != digest:
            bad.append(f"checksum differs: {rel}")
    if bad:
        raise BundleError(f"{len(bad)} of {count} files failed the check:\n  " + "\n  ".join(bad[:20]))
    return count


class _PartWriter:
    """A file-like sink that starts a new part every `size` bytes and records each part's checksum."""

    def __init__(self, folder: Path, stem: str, size: int) -> None:
        self.folder, self.stem, self.size = folder, stem, size
        self.parts: list[Part] = []
        self._handle: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self._written = 0

    def _close_part(self) -> None:
        if self._handle is not None:
            self._handle.close()
            name = Path(self._handle.name).name
            self.parts.append(Part(name, self._written, self._digest.hexdigest()))
            self._handle = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._handle is None or self._written == self.size:
                self._close_part()
                path = self.folder / f"{self.stem}.tar.part{len(self.parts):03d}"
                self._handle = path.open("wb")
                self._digest, self._written = hashlib.sha256(), 0
            take = min(len(view), self.size - self._written)
            self._handle.write(view[:take])
            self._digest.update(view[:take])
            self._written += take
            view = view[take:]
        return len(data)

    def close(self) -> None:
        self._close_part()


def split(folder: Path, dest: Path, size: int) -> list[Part]:
    """The bundle as one tar stream cut into parts of `size` bytes, with PARTS.sha256 beside them."""
    dest.mkdir(parents=True, exist_ok=True)
    writer = _PartWriter(dest, folder.name, size)
    with tarfile.open(fileobj=writer, mode="w|") as archive:  # type: ignore[call-overload]
        archive.add(folder, arcname=folder.name)
    writer.close()
    (dest / PARTS_SUMS).write_text("".join(f"{p.sha256}  {p.name}\n" for p in writer.parts))
    return writer.parts


class _Concat:
    """The parts read in order as one stream."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._handle: BinaryIO | None = None

    def __enter__(self) -> _Concat:
        return self

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()

    def read(self, size: int = -1) -> bytes:
        chunks: list[bytes] = []
        want = size if size >= 0 else 1 << 62
        while want > 0:
            if self._handle is None:
                if not self._paths:
                    break
                self._handle = self._paths.pop(0).open("rb")
            data = self._handle.read(min(want, CHUNK))
            if not data:
                self._handle.close()
                self._handle = None
                continue
            chunks.append(data)
            want -= len(data)
        return b"".join(chunks)


def join(parts_dir: Path, out: Path) -> Path:
    sums = parts_dir / PARTS_SUMS
    if not sums.is_file():
        raise BundleError(f"{sums} not found: give the folder that holds the parts")
    names = [line.partition("  ")[2] for line in sums.read_text().splitlines() if line]
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = parts_dir / name
        if not path.is_file():
            raise BundleError(f"part {name} is missing from {parts_dir}")
        if sha256_file(path) != digest:
            raise BundleError(f"part {name} is damaged (checksum differs): copy it again")
    out.mkdir(parents=True, exist_ok=True)
    top = ""
    with _Concat([parts_dir / name for name in names]) as source, tarfile.open(fileobj=source, mode="r|") as archive:  # type: ignore[call-overload]
        for member in archive:
            top = top or member.name.split("/")[0]
            archive.extract(member, out, filter="data")
    return out / top


def _fill(staging: Path, args: argparse.Namespace) -> Manifest:
    if args.vllm_wheelhouse:
        say(f"engine wheels from {args.vllm_wheelhouse}")
        copy_tree(args.vllm_wheelhouse, staging / "wheels" / "vllm", "*.whl")
        vllm = f"wheelhouse {args.vllm_wheelhouse.name}"
    else:
        say(f"downloading {args.vllm} for Python {args.python_version} {' '.join(args.platform)}")
        pip_download(staging / "wheels" / "vllm", args.vllm, args.python_version, args.platform)
        vllm = args.vllm
    say(f"probe wheels from {args.probe_wheelhouse}")
    copy_tree(args.probe_wheelhouse, staging / "wheels" / "probe", "*.whl")
    packages = sorted(set(default_packages() + list(args.package)))
    say(f"operating-system packages for {args.release_image}: {', '.join(packages)}")
    download_debs(staging / "debs", args.release_image, packages, args.container_tool)
    model = ""
    if args.model:
        model = args.model.resolve().name
        say(f"model folder {model}")
        copy_tree(args.model, staging / "models" / model)
    manifest = Manifest(
        FORMAT,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        args.release_image,
        args.python_version,
        list(args.platform),
        vllm,
        model,
        packages,
    )
    say("checksums")
    write_sums(staging, manifest)
    return manifest


def build(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty: give a new folder (a bundle is built whole)")
    split_size = parse_size(args.split_size) if args.split_size else 0
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _fill(staging, args)
    except BaseException:
        # A half-built bundle must not be mistaken for one: nothing is left but the error.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    staging.rename(out)
    say(f"bundle {out}: {manifest.files} files, {manifest.bytes / 1e6:.0f} MB")
    if split_size:
        parts_dir = out.with_name(f"{out.name}-parts")
        parts = split(out, parts_dir, split_size)
        say(f"{len(parts)} parts in {parts_dir} ({PARTS_SUMS} beside them)")
    print(out)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a bundle folder")
    b.add_argument("--out", type=Path, required=True, help="new folder for the bundle")
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--vllm-wheelhouse", type=Path, help="a folder of engine wheels built for the box")
    source.add_argument("--vllm", help="what pip downloads for the box, e.g. vllm==0.11.0")
    b.add_argument("--python-version", default="3.12", help="the box's Python (default 3.12, Ubuntu 24.04)")
    b.add_argument(
        "--platform",
        action="append",
        default=[],
        help="pip platform tag, repeatable (e.g. manylinux_2_28_x86_64); default: this machine's",
    )
    b.add_argument(
        "--probe-wheelhouse",
        type=Path,
        required=True,
        help="scripts/build-probe-wheelhouse.sh's folder for the box's Python",
    )
    b.add_argument(
        "--release-image",
        required=True,
        help="a container image of the box's release (e.g. ubuntu:24.04); its mirror must answer",
    )
    b.add_argument(
        "--package",
        action="append",
        default=[],
        help="another apt package to carry, repeatable (the roles' own are always carried)",
    )
    b.add_argument("--model", type=Path, help="a model folder (config, tokenizer, weights) to carry")
    b.add_argument("--split-size", help="also write the bundle as tar parts of this size (e.g. 4G)")
    b.add_argument("--container-tool", default="podman", help="podman (default) or docker")
    v = sub.add_parser("verify", help="check a bundle folder against its SHA256SUMS")
    v.add_argument("folder", type=Path)
    j = sub.add_parser("join", help="check parts and unpack them into a bundle folder")
    j.add_argument("parts", type=Path)
    j.add_argument("--out", type=Path, required=True)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            build(args)
        elif args.command == "verify":
            print(f"{args.folder}: {verify(args.folder)} files match {SUMS}")
        else:
            folder = join(args.parts, args.out)
            print(f"{folder}: {verify(folder)} files match {SUMS}")
    except BundleError as error:
        print(f"offline_bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
