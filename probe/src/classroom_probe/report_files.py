"""Write report.json, report.md and report.html into the report directory."""

import json
from pathlib import Path

from classroom_probe import report_render


def write_reports(directory: Path, report: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(report_render.markdown(report), encoding="utf-8")
    (directory / "report.html").write_text(report_render.html(report), encoding="utf-8")
