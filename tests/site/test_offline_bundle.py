"""scripts/offline_bundle.py: checksums, the parts of a split bundle, the packages it carries, its errors.

The build's downloads (pip, apt inside a container of the box's release) run in the site scenario, which
installs from the lab's bundle with the box's network cut; here the folder logic runs on a small tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.site.conftest import ROOT, load_file

SCRIPT = ROOT / "scripts" / "offline_bundle.py"


@pytest.fixture(scope="module")
def bundle() -> ModuleType:
    return load_file(SCRIPT, "offline_bundle")


def _tree(root: Path) -> Path:
    """A bundle folder as build leaves it, with SHA256SUMS and manifest.json written by the script."""
    folder = root / "lab-bundle"
    (folder / "wheels" / "vllm").mkdir(parents=True)
    (folder / "wheels" / "vllm" / "engine-1.0-py3-none-any.whl").write_bytes(b"w" * 300_000)
    (folder / "debs").mkdir()
    (folder / "debs" / "Packages").write_text("Package: haproxy\n")
    (folder / "models" / "tiny").mkdir(parents=True)
    (folder / "models" / "tiny" / "config.json").write_text("{}")
    return folder


def _sealed(bundle: ModuleType, root: Path) -> Path:
    folder = _tree(root)
    manifest = bundle.Manifest(1, "now", "debian:12", "3.11", [], "engine", "tiny", ["haproxy"])
    bundle.write_sums(folder, manifest)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_sums_cover_every_file_and_the_manifest_counts_them(bundle: ModuleType, tmp_path: Path) -> None:
    folder = _sealed(bundle, tmp_path)
    listed = sorted(line.split("  ")[1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert listed == ["debs/Packages", "models/tiny/config.json", "wheels/vllm/engine-1.0-py3-none-any.whl"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == 3
    assert manifest["contents"] == {"debs": 1, "models/tiny": 1, "wheels/vllm": 1}
    # The box checks the same file with coreutils, as the offline_bundle role does.
    check = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=folder, check=False)
    assert check.returncode == 0
    assert bundle.verify(folder) == 3


def test_verify_names_a_damaged_and_a_missing_file(bundle: ModuleType, tmp_path: Path) -> None:
    folder = _sealed(bundle, tmp_path)
    (folder / "debs" / "Packages").write_text("Package: something else\n")
    (folder / "models" / "tiny" / "config.json").unlink()
    result = _cli("verify", str(folder))
    assert result.returncode == 1
    assert "2 of 3 files failed the check" in result.stderr
    assert "checksum differs: debs/Packages" in result.stderr
    assert "missing: models/tiny/config.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_split_parts_join_back_into_the_same_checked_bundle(bundle: ModuleType, tmp_path: Path) -> None:
    folder = _sealed(bundle, tmp_path)
    parts = bundle.split(folder, tmp_path / "parts", bundle.parse_size("100K"))
    assert len(parts) >= 3
    assert all(part.size == 100 * 1024 for part in parts[:-1])
    result = _cli("join", str(tmp_path / "parts"), "--out", str(tmp_path / "joined"))
    assert result.returncode == 0, result.stderr
    joined = tmp_path / "joined" / "lab-bundle"
    assert (joined / "wheels" / "vllm" / "engine-1.0-py3-none-any.whl").read_bytes() == b"w" * 300_000
    assert bundle.verify(joined) == 3


def test_join_refuses_a_damaged_part_before_unpacking(bundle: ModuleType, tmp_path: Path) -> None:
    folder = _sealed(bundle, tmp_path)
    parts = bundle.split(folder, tmp_path / "parts", bundle.parse_size("100K"))
    with (tmp_path / "parts" / parts[1].name).open("r+b") as handle:
        handle.write(b"x")
    result = _cli("join", str(tmp_path / "parts"), "--out", str(tmp_path / "joined"))
    assert result.returncode == 1
    assert f"part {parts[1].name} is damaged" in result.stderr
    assert not (tmp_path / "joined").exists()


@pytest.mark.parametrize("text", ["0", "4X", "-1G", ""])
def test_a_bad_split_size_is_a_one_line_error(bundle: ModuleType, text: str) -> None:
    with pytest.raises(bundle.BundleError, match="--split-size"):
        bundle.parse_size(text)


def test_build_refuses_a_folder_that_is_not_empty_and_a_missing_wheelhouse(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("keep me")
    common = ["--probe-wheelhouse", str(tmp_path / "nowhere"), "--release-image", "debian:12"]
    busy = _cli("build", "--out", str(tmp_path / "out"), "--vllm-wheelhouse", str(tmp_path), *common)
    assert busy.returncode == 1 and "is not empty" in busy.stderr
    assert (tmp_path / "out" / "old").read_text() == "keep me"
    missing = _cli("build", "--out", str(tmp_path / "new"), "--vllm-wheelhouse", str(tmp_path / "nowhere"), *common)
    assert missing.returncode == 1 and "is not a folder" in missing.stderr
    assert "Traceback" not in busy.stderr + missing.stderr
    assert not (tmp_path / "new").exists()
    assert not (tmp_path / ".new.partial").exists()


def _apt_names(task: dict[str, object]) -> list[str]:
    args = task.get("ansible.builtin.apt")
    name = args.get("name") if isinstance(args, dict) else None
    names = name if isinstance(name, list) else [name]
    return [n for n in names if isinstance(n, str)]


def test_the_bundle_carries_every_package_the_site_roles_install(bundle: ModuleType) -> None:
    """Literal package names in the apt tasks of the roles site.yml runs, and those their specs name."""
    carried = set(bundle.default_packages())
    wanted: set[str] = set()
    for role in ("gpu_preflight", "ollama_archive", "vllm_server", "concurrency_probe", "python_app", "gateway"):
        for tasks in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            for task in yaml.safe_load(tasks.read_text()) or []:
                wanted.update(n for n in _apt_names(task) if "{{" not in n)
    python_app = yaml.safe_load((ROOT / "roles/python_app/meta/argument_specs.yml").read_text())
    wanted.add(python_app["argument_specs"]["main"]["options"]["python_app_venv_os_package"]["default"])
    assert wanted <= carried, f"not carried by the bundle: {sorted(wanted - carried)}"
    assert {"python3-venv", "libnuma1", "haproxy", "nftables", "python3-apt"} <= carried
