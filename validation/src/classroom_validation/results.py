"""The results folder of one validation run and its results.json.

Every step is one `python -m classroom_validation` call from playbooks/validate.yml: it loads the
document, records its step (replacing an earlier result of the same name) and writes it back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classroom_validation import SCHEMA_VERSION

RESULTS_FILE = "results.json"
DONE_FILE = "DONE"
STATUSES = ("ok", "failed", "skipped")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, obj: object) -> None:
    """Write atomically: a copy taken while the run goes on never holds half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object; a missing or unreadable file reads as empty."""
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | skipped
    started_at: str
    seconds: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepResult:
        return cls(str(d["name"]), str(d["status"]), str(d.get("started_at", "")), float(d.get("seconds") or 0.0),
                   str(d.get("detail", "")), dict(d.get("data") or {}))


@dataclass
class RunResults:
    folder: Path
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def load(cls, folder: Path) -> RunResults:
        """The run recorded in `folder`; FileNotFoundError when there is none."""
        doc = read_json(folder / RESULTS_FILE)
        return cls(folder, str(doc.get("started_at", "")), doc.get("finished_at"), dict(doc.get("settings") or {}),
                   [StepResult.from_dict(s) for s in doc.get("steps") or []], int(doc.get("schema_version", 1)))

    def record(self, step: StepResult) -> None:
        self.steps = [s for s in self.steps if s.name != step.name] + [step]
        self.save()

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "started_at": self.started_at,
                "finished_at": self.finished_at, "settings": self.settings,
                "steps": [asdict(s) for s in self.steps]}

    def save(self) -> None:
        write_json(self.folder / RESULTS_FILE, self.to_dict())

    def finish(self) -> None:
        self.finished_at = now_iso()
        self.save()
        (self.folder / DONE_FILE).write_text(self.finished_at + "\n")
