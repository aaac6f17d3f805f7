"""What a bundle carries, read from a TOML file (validation/bundles/*.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BundleError(Exception):
    """A problem with the bundle's input or its build, told in one line for the user."""


@dataclass(frozen=True)
class WheelGroup:
    name: str
    requirements: tuple[str, ...]  # pip requirement strings
    local: tuple[str, ...]  # project folders (relative to the project root) built into wheels
    install: bool  # install.py installs this group's wheels into the environment
    skip_installed: bool  # leave out what the host already has at an accepted version (--installed)


@dataclass(frozen=True)
class ModelItem:
    source: str  # project folder with config.json
    tokenizer: bool  # build a word-level tokenizer covering the vocabulary when the folder has none

    @property
    def name(self) -> str:
        return Path(self.source).name


@dataclass(frozen=True)
class DebSet:
    packages: tuple[str, ...]  # apt packages carried besides the roles' own
    from_roles: bool  # also every package the project's roles install (their argument specs name them)


@dataclass(frozen=True)
class BundleSpec:
    name: str
    groups: tuple[WheelGroup, ...]
    models: tuple[ModelItem, ...]
    project: tuple[str, ...]  # files and folders of the project copied as they are
    exclude: tuple[str, ...]  # distributions never carried, whatever requires them
    debs: DebSet | None = None  # operating-system packages for the host's release ([debs]); None: none


def _strings(doc: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BundleError(f"{where}: `{key}` must be a list of non-empty strings")
    return tuple(value)


def _flag(doc: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise BundleError(f"{where}: `{key}` must be true or false")
    return value


def parse_spec(doc: dict[str, Any], where: str) -> BundleSpec:
    name = doc.get("name")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise BundleError(f"{where}: `name` must be letters, digits, - and _ (it names the bundle's files)")
    groups = []
    for i, group in enumerate(doc.get("wheels") or []):
        at = f"{where} [[wheels]] #{i + 1}"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            raise BundleError(f"{at}: each [[wheels]] table needs a `name`")
        groups.append(WheelGroup(group["name"], _strings(group, "requirements", at), _strings(group, "local", at),
                                 _flag(group, "install", at, True), _flag(group, "skip_installed", at, False)))
    if len({g.name for g in groups}) != len(groups):
        raise BundleError(f"{where}: two [[wheels]] tables share a name")
    models = []
    for i, model in enumerate(doc.get("models") or []):
        at = f"{where} [[models]] #{i + 1}"
        if not isinstance(model, dict) or not isinstance(model.get("source"), str):
            raise BundleError(f"{at}: each [[models]] table needs a `source` folder")
        models.append(ModelItem(model["source"], _flag(model, "tokenizer", at, False)))
    project = doc.get("project") or {}
    if not isinstance(project, dict):
        raise BundleError(f"{where}: [project] must be a table with `paths`")
    debs = doc.get("debs")
    if debs is not None and not isinstance(debs, dict):
        raise BundleError(f"{where}: [debs] must be a table with `packages` and `from_roles`")
    deb_set = (DebSet(_strings(debs, "packages", f"{where} [debs]"), _flag(debs, "from_roles", f"{where} [debs]", True))
               if debs is not None else None)
    return BundleSpec(name, tuple(groups), tuple(models), _strings(project, "paths", f"{where} [project]"),
                      _strings(doc, "exclude", where), deb_set)


def load_spec(path: Path) -> BundleSpec:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"cannot read the bundle spec {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"{path} is not valid TOML: {exc}") from exc
    return parse_spec(doc, str(path))
