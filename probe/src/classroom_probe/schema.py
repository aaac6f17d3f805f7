"""JSON schemas generated from the types: the run file's (from `Config`) and, by the report module,
the report's (from its TypedDicts). `python -m classroom_probe schema run-file` prints the first;
probe/run-file.schema.json is that output, kept current by a test."""

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from classroom_probe.checks import CHECKS
from classroom_probe.config import OPTIONS, REQUIRED_FIELDS, RUN_FILE_FIELDS, default_of, field_hint, flag
from classroom_probe.thresholds import INT_KEYS, THRESHOLD_KEYS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
JSON = dict[str, Any]


def type_schema(hint: Any) -> JSON:  # noqa: PLR0911
    """The JSON schema of a Python type made of JSON-able parts (TypedDicts included)."""
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is type(None):
        return {"type": "null"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str or hint is Path:
        return {"type": "string"}
    if hint is object or hint is Any:
        return {}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return _union([type_schema(a) for a in args])
    if origin in (list, tuple):
        return {"type": "array", "items": type_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1]) if args else {}}
    if is_typeddict(hint):
        hints = get_type_hints(hint)
        return {"type": "object", "properties": {k: type_schema(v) for k, v in hints.items()},
                "required": sorted(hint.__required_keys__), "additionalProperties": False}
    raise TypeError(f"no JSON schema for {hint!r}")


def _union(parts: list[JSON]) -> JSON:
    simple = all(set(p) == {"type"} and isinstance(p["type"], str) for p in parts)
    if simple:
        return {"type": [p["type"] for p in parts]}
    return {"anyOf": parts}


def _thresholds_schema() -> JSON:
    props: JSON = {}
    for key in THRESHOLD_KEYS:
        info = CHECKS[key]
        number = "integer" if key in INT_KEYS else "number"
        props[key] = {"type": [number, "null"], "minimum": 0,
                      "description": f"{info.title}: {info.bound}imum {info.measures}, in {info.unit}; "
                                     "null disables the check"}
    return {"type": "object", "properties": props, "additionalProperties": False,
            "description": "overrides of the profile's thresholds (the report lists them as overrides)"}


def run_file_schema() -> JSON:
    props: JSON = {}
    for name in RUN_FILE_FIELDS:
        opt = OPTIONS[name]
        if name == "thresholds":
            props[name] = _thresholds_schema()
            continue
        prop = type_schema(field_hint(name))
        unit = f" [{opt.unit}]" if opt.unit else ""
        prop["description"] = f"{opt.help}{unit}"
        if opt.minimum is not None:
            prop["exclusiveMinimum" if opt.above_minimum else "minimum"] = opt.minimum
        if opt.maximum is not None:
            prop["maximum"] = opt.maximum
        default = default_of(name)
        if name not in REQUIRED_FIELDS and default is not None:
            prop["default"] = str(default) if isinstance(default, Path) else default
        props[name] = prop
    props["headers"]["propertyNames"] = {"pattern": "^[^ :\\r\\n]+$"}
    return {
        "$schema": DRAFT,
        "$id": "classroom_probe/run-file.schema.json",
        "title": "classroom_probe run file",
        "description": "Settings of one probe run: python -m classroom_probe run --config FILE.json. Keys are "
                       "Config's field names; the probe validates the file itself with the same code as its "
                       "command line (ranges, files it names) and answers 'bad input' (exit 2) naming the key.",
        "type": "object",
        "properties": props,
        "required": [*REQUIRED_FIELDS, "report_dir"],
        "additionalProperties": False,
        "allOf": [
            {"if": {"properties": {"mode": {"const": "batch"}}, "required": ["mode"]},
             "then": {"required": ["requests"]}},
            {"if": {"properties": {"mode": {"const": "rate"}}, "required": ["mode"]},
             "then": {"required": ["rate"]}},
        ],
    }


def settings_markdown() -> str:
    """The settings as a Markdown table (probe/README.md holds this output; a test keeps it current)."""
    rows = ["| run-file key | option | unit | default | meaning |", "|---|---|---|---|---|"]
    for name in RUN_FILE_FIELDS:
        opt = OPTIONS[name]
        if name == "thresholds":
            rows.append("| `thresholds` | (`--thresholds FILE`) | | the profile's | an object of threshold overrides "
                        "(see Gate); null disables a check |")
            continue
        default = opt.default_text or _default_text(default_of(name), opt.unit)
        if name in REQUIRED_FIELDS or name == "report_dir":
            default = "required"
        option = flag(name) if field_hint(name) is not bool or default_of(name) is not True else (
            f"--no-{name.replace('_', '-')}")
        rows.append(f"| `{name}` | `{option}` | {opt.unit} | {default} | {opt.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def _default_text(value: object, unit: str) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == {}:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
