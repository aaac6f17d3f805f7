"""`compare`: two runs side by side (e.g. Ollama before, vLLM after)."""

import json
from pathlib import Path
from typing import Any

from classroom_probe import SCHEMA_VERSION, report_render
from classroom_probe.errors import BadInput


def load_report(path: Path, field: str) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(field, f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(field, f"{path} is not JSON: {exc.msg}") from exc
    if not isinstance(obj, dict) or obj.get("schema_version") != SCHEMA_VERSION:
        raise BadInput(field, f"{path} is not a probe report of schema version {SCHEMA_VERSION}")
    return obj


def compare(path_a: Path, path_b: Path, out: Path) -> list[Path]:
    a = load_report(path_a, "A")
    b = load_report(path_b, "B")
    name_a, name_b = _name(path_a, a), _name(path_b, b)
    try:
        out.mkdir(parents=True, exist_ok=True)
        md = out / "compare.md"
        page = out / "compare.html"
        md.write_text(report_render.compare_markdown(a, b, name_a, name_b), encoding="utf-8")
        page.write_text(report_render.compare_html(a, b, name_a, name_b), encoding="utf-8")
    except OSError as exc:
        raise BadInput("--out", f"cannot write {out}: {exc.strerror}") from exc
    return [md, page]


def _name(path: Path, report: dict[str, Any]) -> str:
    return f"{path.parent.name or path.name} ({report['config']['api']})"
