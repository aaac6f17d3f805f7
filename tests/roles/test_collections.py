"""Every Ansible collection the project's YAML uses is declared in requirements.yml.

Looked at: task keys (modules and actions by FQCN), connection, become and inventory plugins
(ansible_connection and the like), lookups, filters and tests named by FQCN inside Jinja, and
molecule's driver. ansible.builtin (and ansible.legacy) come with ansible-core and are not declared.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.yml"
SCANNED = ["site.yml", "roles", "playbooks", "molecule", "inventories", ".config/molecule", "hardware"]
CORE = {"ansible.builtin", "ansible.legacy"}
FQCN = re.compile(r"([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)")
# Keys whose value names a plugin: connection, become, inventory, strategy, shell.
PLUGIN_KEYS = {
    "ansible_connection",
    "connection",
    "ansible_become_method",
    "become_method",
    "plugin",
    "strategy",
    "ansible_shell_type",
}
# Keys whose value is a bare Jinja expression.
EXPRESSION_KEYS = {"when", "that", "changed_when", "failed_when", "until"}
JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
JINJA_USES = [
    re.compile(r"\b(?:lookup|query|q)\(\s*['\"]([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)['\"]"),
    re.compile(r"\|\s*([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\b"),
    re.compile(r"\bis\s+(?:not\s+)?([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\b"),
]
# Molecule drivers and the collection whose modules each one's playbooks run.
MOLECULE_DRIVERS = {"podman": "containers.podman", "docker": "community.docker"}


@dataclass(frozen=True)
class Use:
    """One place where the project names a plugin of a collection."""

    fqcn: str
    path: str

    @property
    def collection(self) -> str:
        return ".".join(self.fqcn.split(".")[:2])


class _AnyTagLoader(yaml.SafeLoader):
    """Reads files with !vault and other Ansible tags; the tagged values do not matter here."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _yaml_files(root: Path) -> Iterator[Path]:
    for name in SCANNED:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.suffix in (".yml", ".yaml") and ".molecule" not in found.parts and found.is_file():
                    yield found


def _jinja_uses(text: str, bare: bool) -> Iterator[str]:
    blocks = [text] if bare else JINJA_BLOCK.findall(text)
    for block in blocks:
        for pattern in JINJA_USES:
            yield from pattern.findall(block)


def _walk(node: object, path: str, in_list: bool = False, key: str = "") -> Iterator[Use]:
    if isinstance(node, dict):
        for k, value in node.items():
            name = str(k)
            # A mapping in a list is a task (or handler, play, block): its FQCN keys are modules.
            if in_list and FQCN.fullmatch(name):
                yield Use(name, path)
            if name in PLUGIN_KEYS and isinstance(value, str) and FQCN.fullmatch(value):
                yield Use(value, path)
            if name == "driver" and isinstance(value, dict) and value.get("name") in MOLECULE_DRIVERS:
                yield Use(f"{MOLECULE_DRIVERS[value['name']]}.(molecule driver {value['name']})", path)
            yield from _walk(value, path, key=name)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, path, in_list=True, key=key)
    elif isinstance(node, str):
        for fqcn in _jinja_uses(node, bare=key in EXPRESSION_KEYS):
            yield Use(fqcn, path)


def collection_uses(root: Path) -> list[Use]:
    uses = []
    for path in _yaml_files(root):
        rel = str(path.relative_to(root))
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader))
        except yaml.YAMLError as exc:
            pytest.fail(f"{rel} is not valid YAML: {exc}")
        for document in documents:
            uses += _walk(document, rel)
    return uses


def declared_collections(requirements: Path) -> dict[str, str | None]:
    data = yaml.safe_load(requirements.read_text(encoding="utf-8")) or {}
    declared: dict[str, str | None] = {}
    for entry in data.get("collections") or []:
        if isinstance(entry, str):
            declared[entry] = None
        else:
            declared[str(entry["name"])] = str(entry["version"]) if "version" in entry else None
    return declared


def undeclared(uses: list[Use], declared: dict[str, str | None]) -> list[str]:
    return sorted(
        {
            f"{use.path}: {use.fqcn} belongs to {use.collection}, which requirements.yml does not declare"
            for use in uses
            if use.collection not in CORE and use.collection not in declared
        }
    )


def installed_version(collection: str) -> str | None:
    """The version the pinned `ansible` package installed (its collections sit in site-packages)."""
    namespace, name = collection.split(".")
    for entry in sys.path:
        manifest = Path(entry) / "ansible_collections" / namespace / name / "MANIFEST.json"
        if manifest.is_file():
            return str(json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"])
    return None


def test_every_used_collection_is_declared():
    problems = undeclared(collection_uses(ROOT), declared_collections(REQUIREMENTS))
    assert not problems, "add these collections to requirements.yml:\n" + "\n".join(f"  {p}" for p in problems)


def test_every_declared_collection_is_used():
    used = {use.collection for use in collection_uses(ROOT)}
    unused = sorted(set(declared_collections(REQUIREMENTS)) - used)
    assert not unused, f"requirements.yml declares collections nothing uses: {', '.join(unused)}"


def test_the_scan_sees_the_lab_connection_and_the_molecule_driver():
    uses = collection_uses(ROOT)
    assert Use("containers.podman.podman", "inventories/lab/hosts.yml") in uses
    assert any(u.collection == "containers.podman" and u.path == ".config/molecule/config.yml" for u in uses)


def test_declared_versions_are_the_installed_ones():
    for collection, version in declared_collections(REQUIREMENTS).items():
        installed = installed_version(collection)
        assert installed is not None, f"{collection} is not installed: is the pinned ansible package in .venv?"
        assert version is None or version == installed, (
            f"requirements.yml pins {collection} {version}, the pinned ansible package ships {installed}: "
            "set requirements.yml to the shipped version"
        )


def test_an_undeclared_collection_is_reported(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "demo.yml").write_text(
        """
- name: Demo
  hosts: all
  connection: community.docker.docker
  tasks:
    - name: Open the port
      community.general.ufw: {rule: allow, port: "8000"}
      when: x is community.general.something
    - name: Read a secret
      ansible.builtin.debug:
        msg: "{{ lookup('community.hashi_vault.hashi_vault', 'k') | ansible.utils.to_paths }}"
    - name: Not a module
      ansible.builtin.set_fact:
        docs: see docs.vllm.ai for the details
""",
        encoding="utf-8",
    )
    problems = undeclared(collection_uses(tmp_path), {"community.general": None})
    assert problems == [
        "playbooks/demo.yml: ansible.utils.to_paths belongs to ansible.utils, which requirements.yml does not declare",
        "playbooks/demo.yml: community.docker.docker belongs to community.docker, which requirements.yml does not "
        "declare",
        "playbooks/demo.yml: community.hashi_vault.hashi_vault belongs to community.hashi_vault, which "
        "requirements.yml does not declare",
    ]
