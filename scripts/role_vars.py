#!/usr/bin/env python3
"""Generates each role's defaults/main.yml and README variables table from meta/argument_specs.yml.

    python scripts/role_vars.py --write [ROLE_DIR ...]   # regenerate (what `make docs` runs)
    python scripts/role_vars.py --check [ROLE_DIR ...]   # exit 1 and list every drift

Without ROLE_DIR: every role under roles/. The spec is the one source of a variable's type, choices,
description and default. Ansible does not apply the defaults written in argument_specs, so the
generated defaults/main.yml carries them; the README shows them between the markers below.
A comment line `# --- Title ---` in the spec starts a section (of defaults/main.yml and the README).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN GENERATED VARIABLES -->"
END = "<!-- END GENERATED VARIABLES -->"
WIDTH = 100
SPEC = "meta/argument_specs.yml"
DEFAULTS = "defaults/main.yml"
README = "README.md"
FIX = "run `make docs`"

_SECTION = re.compile(r"^\s*#\s*---\s+(?P<title>.*?)\s*-*\s*$")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:")
_PLAIN = re.compile(r"[A-Za-z_/.][A-Za-z0-9_./@+:=-]*")
_TABLE_NAME = re.compile(r"^\|\s*`(?P<name>[A-Za-z_][A-Za-z0-9_]*)`\s*\|", re.MULTILINE)
_CODE = re.compile(r"(`[^`]*`)")
_TEMPLATED = "{{"

# The Python types a spec default may have for each argument_specs type (None is always allowed).
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Finding:
    """One disagreement between a role's spec and a file generated from it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Option:
    """One variable (or a key of a dict variable) as meta/argument_specs.yml describes it."""

    name: str
    raw: Mapping[str, object]
    type: str | None
    elements: str | None
    choices: tuple[object, ...]
    description: tuple[str, ...]
    has_default: bool
    default: object
    required: bool
    no_log: bool
    suboptions: tuple[Option, ...]
    entry_points: tuple[str, ...] = ()
    section: str = ""


@dataclass(frozen=True)
class RoleSpec:
    """The union of a role's entry points' options, in the order the spec file lists them."""

    name: str
    path: Path
    summary: str
    entry_points: tuple[str, ...]
    options: tuple[Option, ...]


@dataclass
class Outcome:
    """What one role run produced: files written, notes on changed values, remaining findings."""

    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _yaml_error(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


# --- YAML and Markdown rendering of values ----------------------------------------------------------


def same(a: object, b: object) -> bool:
    """Equality that tells 1 from true and 1 from 1.0, as YAML readers do."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _loads_back(text: str, value: str, flow: bool) -> bool:
    doc = f"k: [{text}]" if flow else f"k: {text}"
    try:
        loaded = yaml.safe_load(doc)
    except yaml.YAMLError:
        return False
    return same(loaded, {"k": [value] if flow else value})


def _yaml_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _yaml_string(value: str, flow: bool) -> str:
    # Strings that start with a digit (versions, addresses) are quoted so no reader takes them for numbers.
    if value and not value[0].isdigit() and _PLAIN.fullmatch(value) and _loads_back(value, value, flow):
        return value
    return json.dumps(value, ensure_ascii=False)


def yaml_scalar(value: object, flow: bool = False) -> str:
    """A scalar as YAML; strings stay plain only where they read back as the same string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    if isinstance(value, str):
        return _yaml_string(value, flow)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a YAML default")


def yaml_flow(value: object) -> str:
    """A value on one line: scalars, [lists] and {mappings}."""
    if isinstance(value, list):
        return "[" + ", ".join(yaml_flow(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_scalar(k, flow=True)}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    return yaml_scalar(value, flow=True)


def _is_collection(value: object) -> bool:
    return isinstance(value, (list, dict)) and len(value) > 0


def yaml_entry(key: str, value: object, indent: int = 0) -> list[str]:
    """`key: value` lines; a collection stays on one line while that line fits in WIDTH."""
    pad = " " * indent
    one_line = f"{pad}{key}: {yaml_flow(value)}"
    if not _is_collection(value) or len(one_line) <= WIDTH:
        return [one_line]
    lines = [f"{pad}{key}:"]
    if isinstance(value, dict):
        for k, v in value.items():
            lines += yaml_entry(yaml_scalar(k), v, indent + 2)
    elif isinstance(value, list):
        for item in value:
            lines += _yaml_item(item, indent + 2)
    return lines


def _yaml_item(item: object, indent: int) -> list[str]:
    pad = " " * indent
    one_line = f"{pad}- {yaml_flow(item)}"
    if not _is_collection(item) or len(one_line) <= WIDTH:
        return [one_line]
    if isinstance(item, dict):
        lines: list[str] = []
        for k, v in item.items():
            lines += yaml_entry(yaml_scalar(k), v, indent + 2)
        lines[0] = f"{pad}- {lines[0].lstrip()}"
        return lines
    lines = [f"{pad}-"]
    for sub in item if isinstance(item, list) else []:
        lines += _yaml_item(sub, indent + 2)
    return lines


def markdown_text(text: str) -> str:
    """Prose for a table cell: code spans kept, `|` escaped, <placeholders> shown rather than eaten as HTML."""
    parts = []
    for part in _CODE.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            parts.append(part.replace("|", "\\|"))
        else:
            parts.append(part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|"))
    return "".join(parts)


def markdown_code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


# --- Reading the spec ---------------------------------------------------------------------------------


def _paragraphs(raw: object) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    return tuple(" ".join(str(item).split()) for item in items if str(item).strip())


def _option(name: str, raw: object, where: str, findings: list[Finding]) -> Option | None:
    if not isinstance(raw, dict):
        findings.append(Finding(where, f"{name} must be a mapping (type, description, default), not {raw!r}"))
        return None
    subs: list[Option] = []
    raw_subs = raw.get("options")
    if isinstance(raw_subs, dict):
        for sub_name, sub_raw in raw_subs.items():
            sub = _option(f"{name}.{sub_name}", sub_raw, where, findings)
            if sub is not None:
                subs.append(sub)
    choices = raw.get("choices")
    return Option(
        name=name,
        raw=raw,
        type=str(raw["type"]) if "type" in raw else None,
        elements=str(raw["elements"]) if "elements" in raw else None,
        choices=tuple(choices) if isinstance(choices, list) else (),
        description=_paragraphs(raw.get("description")),
        has_default="default" in raw,
        default=raw.get("default"),
        required=raw.get("required") is True,
        no_log=raw.get("no_log") is True,
        suboptions=tuple(subs),
    )


def _sections(text: str) -> dict[str, str]:
    """Variable name -> title of the `# --- Title ---` comment right above it."""
    titles: dict[str, str] = {}
    pending: str | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            pending = match.group("title")
            continue
        if pending is None or not line.strip() or line.lstrip().startswith("#"):
            continue
        key = _KEY.match(line)
        if key:
            titles.setdefault(key.group("key"), pending)
        pending = None
    return titles


def _option_problems(option: Option, where: str) -> list[Finding]:
    found: list[Finding] = []
    if not option.description:
        found.append(Finding(where, f"{option.name} has no description (undocumented)"))
    if option.type is None:
        found.append(Finding(where, f"{option.name} has no type"))
    if option.has_default and option.default is not None:
        allowed = _TYPES.get(option.type or "")
        templated = isinstance(option.default, str) and _TEMPLATED in option.default
        wrong_bool = isinstance(option.default, bool) and option.type in ("int", "float")
        if allowed and not templated and (wrong_bool or not isinstance(option.default, allowed)):
            found.append(Finding(where, f"{option.name}: default {yaml_flow(option.default)} is not a {option.type}"))
        if option.choices and not templated and not any(same(option.default, c) for c in option.choices):
            found.append(
                Finding(where, f"{option.name}: default {yaml_flow(option.default)} is not one of its choices")
            )
    if option.required and option.has_default:
        found.append(Finding(where, f"{option.name} is required and has a default: keep one of the two"))
    for sub in option.suboptions:
        found += _option_problems(sub, where)
    return found


def load_spec(role_dir: Path) -> tuple[RoleSpec | None, list[Finding]]:
    """The role's options (union of its entry points) and what is wrong with the spec itself."""
    where = _rel(role_dir / SPEC)
    text = _read(role_dir / SPEC)
    if text is None:
        return None, [Finding(where, "missing: every role declares its variables there")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [Finding(where, f"is not valid YAML: {_yaml_error(exc)}")]
    specs = data.get("argument_specs") if isinstance(data, dict) else None
    if not isinstance(specs, dict) or not specs:
        return None, [Finding(where, "needs a top-level `argument_specs` mapping with at least one entry point")]

    findings: list[Finding] = []
    merged: dict[str, Option] = {}
    users: dict[str, list[str]] = {}
    for entry, body in specs.items():
        if not isinstance(body, dict):
            findings.append(Finding(where, f"entry point {entry} must be a mapping"))
            continue
        options = body.get("options") or {}
        if not isinstance(options, dict):
            findings.append(Finding(where, f"entry point {entry}: options must be a mapping"))
            continue
        for name, raw in options.items():
            option = _option(str(name), raw, where, findings)
            if option is None:
                continue
            first = merged.setdefault(option.name, option)
            if first is not option and not same(dict(first.raw), dict(option.raw)):
                findings.append(
                    Finding(
                        where,
                        f"{option.name} differs between entry points {users[option.name][0]} and {entry}: "
                        "share one definition (a YAML anchor and `<<:` merge key)",
                    )
                )
            users.setdefault(option.name, []).append(str(entry))

    titles = _sections(text)
    entry_points = tuple(str(e) for e in specs)
    section = ""
    ordered: list[Option] = []
    for option in merged.values():
        section = titles.get(option.name, section)
        used_by = tuple(users[option.name]) if len(users[option.name]) < len(entry_points) else ()
        ordered.append(replace(option, entry_points=used_by, section=section))
    for option in ordered:
        findings += _option_problems(option, where)

    main = specs.get("main") if isinstance(specs.get("main"), dict) else next(iter(specs.values()))
    summary = " ".join(str(main.get("short_description", "")).split()) if isinstance(main, dict) else ""
    spec = RoleSpec(role_dir.name, role_dir, summary, entry_points, tuple(ordered))
    return spec, findings


# --- Generating the files --------------------------------------------------------------------------


def _comment(text: str, width: int = WIDTH) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width - 2, break_long_words=False, break_on_hyphens=False)]


def _extras(option: Option, markdown: bool) -> list[str]:
    """Generated remarks after the description: choices, keys of a dict, entry points."""

    def code(value: object) -> str:
        return markdown_code(yaml_flow(value)) if markdown else yaml_flow(value)

    out = []
    if option.choices:
        out.append("Choices: " + ", ".join(code(c) for c in option.choices) + ".")
    if option.suboptions and not markdown:
        keys = [f"{s.name.rsplit('.', 1)[-1]} ({_type_text(s)})" for s in option.suboptions]
        out.append("Keys: " + ", ".join(keys) + ".")
    if option.entry_points:
        names = ", ".join(code(e) if markdown else e for e in option.entry_points)
        out.append(f"Only the entry point {names} uses it.")
    return out


def _type_text(option: Option) -> str:
    text = option.type or "str"
    if option.elements:
        text += f" of {option.elements}"
    return text


def render_defaults(spec: RoleSpec) -> str:
    head = f"# {spec.name}: {spec.summary}" if spec.summary else f"# {spec.name}"
    lines = [
        *textwrap.wrap(head, WIDTH, subsequent_indent="# ", break_long_words=False),
        f"# Generated from {SPEC} by scripts/role_vars.py: edit the spec, not this file, then run",
        "# `make docs` (python scripts/role_vars.py --write). The tests fail when the two disagree.",
    ]
    sectioned = any(o.section for o in spec.options)
    section: str | None = None
    for option in spec.options:
        if sectioned and option.section != section:
            section = option.section
            lines += ["", (f"# --- {section} ").ljust(WIDTH, "-")] if section else [""]
        elif not sectioned:
            lines.append("")
        for paragraph in [*option.description, *_extras(option, markdown=False)]:
            lines += _comment(paragraph)
        if option.has_default:
            lines += yaml_entry(option.name, option.default)
        else:
            why = "required" if option.required else "optional"
            lines.append(f"# {option.name}: no default ({why}; set it in the inventory)")
    text = "\n".join(lines) + "\n"
    expected = {o.name: o.default for o in spec.options if o.has_default}
    if not same(yaml.safe_load(text) or {}, expected):
        raise RuntimeError(f"{spec.name}: generated defaults do not read back as the spec's defaults")
    return text


def _row(option: Option) -> str:
    kind = _type_text(option) + (", secret" if option.no_log else "")
    if option.has_default:
        default = markdown_code(yaml_flow(option.default))
    else:
        default = "required" if option.required else "unset"
    text = "<br>".join(markdown_text(p) for p in option.description)
    extras = " ".join(_extras(option, markdown=True))
    text = f"{text} {extras}".strip()
    return f"| `{option.name}` | {kind} | {default} | {text} |"


def render_table(spec: RoleSpec) -> str:
    lines = [
        BEGIN,
        f"<!-- Generated from {SPEC} by `make docs` (scripts/role_vars.py): edit the spec, not this table. -->",
    ]
    groups: list[tuple[str, list[Option]]] = []
    for option in spec.options:
        if not groups or groups[-1][0] != option.section:
            groups.append((option.section, []))
        groups[-1][1].append(option)
    for title, options in groups:
        lines.append("")
        if title:
            lines += [f"### {markdown_text(title)}", ""]
        lines += ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
        for option in options:
            lines.append(_row(option))
            lines += [_row(sub) for sub in option.suboptions]
    lines += ["", END]
    return "\n".join(lines)


def _split_readme(text: str) -> tuple[str, str, str] | None:
    start = text.find(BEGIN)
    end = text.find(END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return text[:start], text[start : end + len(END)], text[end + len(END) :]


def render_readme(spec: RoleSpec, current: str | None) -> str:
    table = render_table(spec)
    if current is None:
        return f"# {spec.name}\n\n{spec.summary}\n\n## Variables\n\n{table}\n"
    parts = _split_readme(current)
    if parts is None:
        return current.rstrip("\n") + f"\n\n## Variables\n\n{table}\n"
    return parts[0] + table + parts[2]


# --- Checking and writing ----------------------------------------------------------------------------


def _load_defaults(role_dir: Path) -> tuple[dict[str, object] | None, str | None, list[Finding]]:
    where = _rel(role_dir / DEFAULTS)
    text = _read(role_dir / DEFAULTS)
    if text is None:
        return None, None, [Finding(where, f"missing: {FIX} to generate it")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, text, [Finding(where, f"is not valid YAML: {_yaml_error(exc)}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, text, [Finding(where, "must be a mapping of variable names to values")]
    return {str(k): v for k, v in data.items()}, text, []


def _defaults_drift(spec: RoleSpec, values: Mapping[str, object]) -> list[Finding]:
    where = _rel(spec.path / DEFAULTS)
    by_name = {o.name: o for o in spec.options}
    found = []
    for name, value in values.items():
        option = by_name.get(name)
        if option is None:
            found.append(
                Finding(
                    where,
                    f"sets {name}, which {SPEC} does not declare: add it to the spec "
                    f"(type, description, default: {yaml_flow(value)}), then {FIX}",
                )
            )
        elif not option.has_default:
            found.append(Finding(where, f"sets {name} to {yaml_flow(value)}, but the spec gives it no default"))
        elif not same(value, option.default):
            found.append(
                Finding(where, f"{name} is {yaml_flow(value)}, the spec's default is {yaml_flow(option.default)}")
            )
    for option in spec.options:
        if option.has_default and option.name not in values:
            found.append(Finding(where, f"lacks {option.name} (the spec's default: {yaml_flow(option.default)})"))
    return found


def _readme_drift(spec: RoleSpec, text: str | None) -> list[Finding]:
    where = _rel(spec.path / README)
    if text is None:
        return [Finding(where, f"missing: {FIX} to create it with the variables table")]
    parts = _split_readme(text)
    if parts is None:
        return [Finding(where, f"has no generated variables table ({BEGIN} ... {END}): {FIX}")]
    block = parts[1]
    if block == render_table(spec):
        return []
    listed = set(_TABLE_NAME.findall(block))
    names = [o.name for o in spec.options] + [s.name for o in spec.options for s in o.suboptions]
    found = [
        Finding(where, f"{name} is not in the variables table (undocumented)") for name in names if name not in listed
    ]
    found += [
        Finding(where, f"the variables table lists {name}, which {SPEC} does not declare")
        for name in sorted(listed - set(names))
    ]
    return found or [Finding(where, f"the variables table is out of date: {FIX}")]


def check_role(role_dir: Path) -> list[Finding]:
    """Every disagreement between the role's spec, its defaults/main.yml and its README table."""
    spec, findings = load_spec(role_dir)
    if spec is None:
        return findings
    values, text, problems = _load_defaults(role_dir)
    findings += problems
    if values is not None:
        drift = _defaults_drift(spec, values)
        findings += drift
        if not drift and text != render_defaults(spec):
            findings.append(Finding(_rel(role_dir / DEFAULTS), f"is out of date (comments or layout): {FIX}"))
    findings += _readme_drift(spec, _read(role_dir / README))
    return findings


def write_role(role_dir: Path) -> Outcome:
    """Regenerates the role's files; never drops a variable that only defaults/main.yml knows."""
    outcome = Outcome()
    spec, findings = load_spec(role_dir)
    if spec is None:
        outcome.findings = findings
        return outcome
    values, text, problems = _load_defaults(role_dir)
    by_name = {o.name: o for o in spec.options}
    unknown = [name for name in (values or {}) if name not in by_name]
    if problems and text is not None:
        outcome.findings = problems
        outcome.notes.append(f"{_rel(role_dir / DEFAULTS)}: left as it is (fix or delete it, then run again)")
    elif unknown:
        outcome.notes.append(
            f"{_rel(role_dir / DEFAULTS)}: left as it is, so that {', '.join(unknown)} is not lost; "
            f"declare it in {SPEC} first"
        )
    else:
        for name, value in (values or {}).items():
            option = by_name[name]
            if option.has_default and not same(value, option.default):
                outcome.notes.append(
                    f"{_rel(role_dir / DEFAULTS)}: {name} {yaml_flow(value)} -> {yaml_flow(option.default)} (the spec)"
                )
        generated = render_defaults(spec)
        if text != generated:
            (role_dir / DEFAULTS).parent.mkdir(parents=True, exist_ok=True)
            (role_dir / DEFAULTS).write_text(generated, encoding="utf-8")
            outcome.written.append(_rel(role_dir / DEFAULTS))
    readme = _read(role_dir / README)
    generated_readme = render_readme(spec, readme)
    if readme != generated_readme:
        (role_dir / README).write_text(generated_readme, encoding="utf-8")
        outcome.written.append(_rel(role_dir / README))
    outcome.findings = check_role(role_dir)
    return outcome


def role_dirs(root: Path = ROOT) -> list[Path]:
    """Every role of the project: the folders under roles/."""
    base = root / "roles"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate defaults/main.yml and the README tables")
    mode.add_argument("--check", action="store_true", help="exit 1 and list every drift; change nothing")
    parser.add_argument("roles", nargs="*", type=Path, help="role folders (default: every folder under roles/)")
    args = parser.parse_args(argv)

    roles = list(args.roles) or role_dirs()
    missing = [str(r) for r in roles if not r.is_dir()]
    if missing:
        print(f"role_vars: not a role folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    findings: list[Finding] = []
    failed: list[str] = []
    for role in roles:
        try:
            if args.write:
                outcome = write_role(role)
                for line in outcome.notes:
                    print(line)
                for path in outcome.written:
                    print(f"wrote {path}")
                found = outcome.findings
            else:
                found = check_role(role)
        except (OSError, UnicodeDecodeError) as exc:
            found = [Finding(_rel(role), f"cannot be read or written: {exc}")]
        findings += found
        failed += [role.name] if found else []
    names = ", ".join(r.name for r in roles)
    if findings:
        print(
            f"role_vars: {len(findings)} problem(s) in {', '.join(failed)}; {SPEC} is the source:"
            f" fix it there where needed, then {FIX}",
            file=sys.stderr,
        )
        for finding in findings:
            print(f"  {finding}", file=sys.stderr)
        return 1
    print(f"role_vars: {DEFAULTS} and the README variables of {len(roles)} role(s) match their spec ({names})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
