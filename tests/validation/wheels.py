"""Tiny wheels and an in-tree PEP 517 backend for the bundle tests: a package index in a folder, no network."""

from __future__ import annotations

import base64
import hashlib
import inspect
import zipfile
from pathlib import Path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel with METADATA, WHEEL and RECORD, as pip expects them."""
    dist, info = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{dist}/__init__.py": b"VALUE = 1\n", f"{info}/METADATA": metadata.encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},sha256={_digest(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
    return path


def _build_wheel(wheel_directory: str, config_settings: object = None, metadata_directory: object = None) -> str:
    import tomllib  # noqa: PLC0415 - this function runs as the project's own backend

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    path = write_wheel(Path(wheel_directory), project["name"], project["version"],
                       tuple(project.get("dependencies", [])))
    return path.name


BACKEND = "\n\n".join([
    "import base64, hashlib, zipfile\nfrom pathlib import Path",
    inspect.getsource(_digest), inspect.getsource(write_wheel), inspect.getsource(_build_wheel),
    "build_wheel = _build_wheel\n\ndef get_requires_for_build_wheel(config_settings=None):\n    return []\n",
])


def make_project(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A project folder pip builds with its in-tree backend (nothing downloaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    deps = ", ".join(f'"{r}"' for r in requires)
    (folder / "pyproject.toml").write_text(
        f'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n')
    (folder / "backend.py").write_text("from __future__ import annotations\n" + BACKEND)
    return folder
