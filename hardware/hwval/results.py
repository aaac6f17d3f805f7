"""The results folder of one validation run: one JSON document rewritten after every step."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hwval import SCHEMA_VERSION

RESULTS_FILE = "results.json"
DONE_FILE = "DONE"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | skipped
    started_at: str
    seconds: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResults:
    folder: Path
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)

    def add(self, step: StepResult) -> None:
        self.steps.append(step)
        self.save()

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "settings": self.settings,
            "steps": [asdict(s) for s in self.steps],
        }

    def save(self) -> None:
        write_json(self.folder / RESULTS_FILE, self.to_dict())

    def finish(self) -> None:
        self.finished_at = now_iso()
        self.save()
        (self.folder / DONE_FILE).write_text(self.finished_at + "\n")


def write_json(path: Path, obj: object) -> None:
    """Write atomically: a bundle taken mid-run never holds half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
