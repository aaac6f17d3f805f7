"""Verifies and installs an offline bundle on a host without network. Standard library only: this file
travels beside the bundle as install.py.

    python3 install.py --dest DIR --venv DIR [--system-site-packages]
    python3 install.py --dest DIR --python PYTHON   (an existing environment, e.g. one that has torch)
    python3 install.py --dest DIR                   (unpack and check only: site.yml installs from DIR)
    python3 install.py --verify-only
    python3 install.py --verify-tree DIR            (check an unpacked bundle again, e.g. before each use)

Beside this file: SHA256SUMS, <name>.tar.sha256, and <name>.tar or its parts <name>.tar.part-NNN.
Nothing is installed unless every check passed:
1. every part is checked against SHA256SUMS, then the joined parts against <name>.tar.sha256;
2. the tar is unpacked into a new folder beside DEST and every file checked against manifest.json
   (sha256 and size, none missing, none extra); only then does that folder become DEST;
3. the environment's Python and the host's platform are compared with what the bundle was built for;
4. the wheels of the manifest's install groups go into the environment with pip --no-index --no-deps
   (exactly the set resolved when the bundle was built); `pip check` then lists what stays unmet.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 1024 * 1024
MANIFEST = "manifest.json"


class Refused(Exception):
    """A check failed: the message says which file or setting and what to do."""


def say(text: str) -> None:
    print(f"[install] {text}", flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """sha256sum's format: `<hex>  <file name>` per line."""
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if len(digest) == 64 and name:
            sums[name.lstrip("*")] = digest
    return sums


def carried_files(here: Path) -> tuple[str, list[Path], str]:
    """The bundle's name, its tar or parts in order, and the sha256 of the whole tar."""
    whole = sorted(here.glob("*.tar.sha256"))
    if len(whole) != 1:
        raise Refused(f"expected one <name>.tar.sha256 in {here}, found {len(whole)}: run install.py from the "
                      "folder that holds the bundle's files")
    digest, _, tar_name = whole[0].read_text().strip().partition("  ")
    name = tar_name.removesuffix(".tar")
    parts = sorted(here.glob(f"{tar_name}.part-*"))
    files = parts or ([here / tar_name] if (here / tar_name).is_file() else [])
    if not files:
        raise Refused(f"neither {tar_name} nor its parts ({tar_name}.part-000, ...) are in {here}")
    return name, files, digest


def verify_carried(here: Path, files: list[Path]) -> None:
    sums = read_sums(here / "SHA256SUMS")
    expected = sorted(n for n in sums if n != "install.py")
    missing = [n for n in expected if not (here / n).is_file()]
    if missing:
        raise Refused(f"missing: {', '.join(missing)} (listed in SHA256SUMS): carry them, then run again")
    extra = [f.name for f in files if f.name not in sums]
    if extra:
        raise Refused(f"not listed in SHA256SUMS: {', '.join(extra)}: these are from another bundle")
    for path in files:
        if sha256_file(path) != sums[path.name]:
            raise Refused(f"{path.name} is damaged (sha256 differs from SHA256SUMS): carry it again")
    say(f"{len(files)} file(s) match SHA256SUMS")


class Joined(io.RawIOBase):
    """The parts read as one stream, hashed on the way."""

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)
        self.current: io.BufferedReader | None = None
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self.current is None:
                if not self.files:
                    return 0
                self.current = self.files.pop(0).open("rb")
            data = self.current.read(len(buffer))
            if data:
                self.digest.update(data)
                buffer[: len(data)] = data
                return len(data)
            self.current.close()
            self.current = None

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return self.digest.hexdigest()


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise Refused(f"unsafe path in the bundle: {name}")
    return path


def unpack(files: list[Path], digest: str, into: Path) -> None:
    stream = Joined(files)
    with tarfile.open(fileobj=io.BufferedReader(stream, CHUNK), mode="r|") as tar:
        for member in tar:
            target = into.joinpath(*_safe_name(member.name).parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = tar.extractfile(member)
                if source is None:
                    raise Refused(f"cannot read {member.name} from the bundle")
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
            else:
                raise Refused(f"{member.name} is neither a file nor a folder: refused")
    if stream.drain() != digest:
        raise Refused("the joined parts do not match <name>.tar.sha256: a part is out of order or from another build")


def verify_tree(root: Path) -> dict[str, Any]:
    """The manifest, once every file under `root` matches it."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise Refused(f"no {MANIFEST} in {root}")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    listed: dict[str, dict[str, Any]] = manifest.get("files") or {}
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
    if missing or extra:
        raise Refused(f"the unpacked bundle differs from its manifest: missing {missing[:5]}, extra {extra[:5]}")
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
            raise Refused(f"{rel} does not match the manifest's sha256: the bundle is damaged")
    say(f"all {len(listed)} files match {MANIFEST}")
    return manifest


def place(files: list[Path], digest: str, dest: Path) -> dict[str, Any]:
    """The verified bundle at `dest`; a folder that already holds the same bundle is verified, not replaced."""
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MANIFEST).is_file():
            raise Refused(f"{dest} is not empty and holds no bundle: give a new or empty folder")
        say(f"{dest} already holds a bundle: verifying it")
        return verify_tree(dest)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    partial.mkdir(parents=True)
    try:
        unpack(files, digest, partial)
        manifest = verify_tree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dest.exists():
        dest.rmdir()
    partial.rename(dest)
    say(f"unpacked into {dest}")
    return manifest


def glibc_at_least(have: str, need: str) -> bool:
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split(".")[:2] if x.isdigit())

    return bool(have) and key(have) >= key(need)


def python_version(python: str) -> str:
    done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Refused(f"cannot run {python}: {done.stderr.strip()[-200:]}")
    return done.stdout.strip()


def check_target(manifest: dict[str, Any], python: str) -> None:
    target = manifest.get("target") or {}
    have_py = python_version(python)
    if have_py != target.get("python_version"):
        raise Refused(f"the bundle is for Python {target.get('python_version')}, {python} is {have_py}: run with "
                      f"that Python or rebuild the bundle with --python-version {have_py}")
    if platform.machine() != target.get("arch"):
        raise Refused(f"the bundle is for {target.get('arch')}, this host is {platform.machine()}")
    libc, version = platform.libc_ver()
    if libc == "glibc" and not glibc_at_least(version, str(target.get("glibc", ""))):
        raise Refused(f"the bundle's wheels need glibc {target.get('glibc')}, this host has {version}: rebuild with "
                      f"--glibc {version}")


def _pip_wheel(root: Path, manifest: dict[str, Any]) -> Path:
    wheels = sorted(w for g in manifest.get("groups") or [] for w in g.get("wheels") or []
                    if PurePosixPath(w).name.startswith("pip-"))
    if not wheels:
        raise Refused("this Python has no pip (no ensurepip) and the bundle carries no pip wheel: add `pip` to a "
                      "wheel group of the spec and rebuild")
    return root / str(wheels[-1])


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise Refused(f"{what} failed (exit {done.returncode})")


def environment(args: argparse.Namespace, root: Path, manifest: dict[str, Any]) -> str:
    """The interpreter to install into, with pip; a new venv is created when asked."""
    if args.python:
        python = str(args.python)
    else:
        venv = Path(args.venv)
        python = str(venv / "bin" / "python")
        if not Path(python).exists():
            with_pip = importlib.util.find_spec("ensurepip") is not None
            # Debian and Ubuntu ship python3 without ensurepip (python3-venv): pip then comes from its wheel.
            command = [sys.executable, "-m", "venv", *(["--system-site-packages"] if args.system_site_packages else []),
                       *([] if with_pip else ["--without-pip"]), str(venv)]
            _run(command, f"creating the venv {venv}")
            say(f"created the venv {venv}")
    check_target(manifest, python)
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode != 0:
        wheel = _pip_wheel(root, manifest)
        _run([python, str(wheel / "pip"), "install", "--no-index", "--no-deps", "--quiet", "--no-cache-dir",
              str(wheel)], "installing pip from its wheel")
        say(f"installed pip from {wheel.name}")
    return python


def install_groups(python: str, root: Path, manifest: dict[str, Any]) -> int:
    wheels = [root / w for g in manifest.get("groups") or [] if g.get("install") for w in g.get("wheels") or []]
    say(f"installing {len(wheels)} wheels into {python} (pip --no-index --no-deps)")
    _run([python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
          "--quiet", *map(str, wheels)], "pip install")
    done = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    excluded = {e.lower().replace("_", "-") for e in manifest.get("excluded") or []}
    unmet = [line for line in done.stdout.splitlines() if line.strip()]
    for line in unmet:
        on_purpose = any(f" {name}" in line.lower().replace("_", "-") for name in excluded)
        say(f"{'left out on purpose' if on_purpose else 'UNMET'}: {line}")
    return len(unmet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--dest", type=Path, help="folder that receives the unpacked bundle (new or empty)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--venv", type=Path, help="create (or reuse) this venv and install into it")
    where.add_argument("--python", help="install into this interpreter's environment instead")
    p.add_argument("--system-site-packages", action="store_true", help="the new venv sees the system's packages")
    p.add_argument("--verify-only", action="store_true", help="check the carried files, unpack nothing")
    p.add_argument("--verify-tree", type=Path, metavar="DIR",
                   help="check an unpacked bundle's every file against its manifest, nothing else")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    here = Path(__file__).resolve().parent
    try:
        if args.verify_tree is not None:
            verify_tree(args.verify_tree.resolve())
            return 0
        name, files, digest = carried_files(here)
        verify_carried(here, files)
        if args.verify_only:
            stream = Joined(files)
            if stream.drain() != digest:
                raise Refused("the joined parts do not match <name>.tar.sha256")
            say(f"{name}: every part and the joined whole match their sha256")
            return 0
        if args.dest is None:
            raise Refused("give --dest (and --venv or --python to install the bundle's environment)")
        dest = Path(args.dest).resolve()
        manifest = place(files, digest, dest)
        if args.venv is None and args.python is None:
            say(f"checked and unpacked into {dest}; no environment asked for (--venv/--python), none installed")
            return 0
        python = environment(args, dest, manifest)
        unmet = install_groups(python, dest, manifest)
    except Refused as exc:
        say(f"REFUSED: {exc}")
        return 1
    say(f"done: environment {python}; wheels {dest / 'wheels'}; project {dest / 'project'}; models "
        f"{', '.join(str(dest / m) for m in manifest.get('models') or []) or 'none'}"
        + (f"; {unmet} line(s) of `pip check` above" if unmet else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
