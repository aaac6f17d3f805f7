"""Everything the probe writes, checked before the load starts, and written so that a run is never lost.

Before the load: the report folder is created and a file is written and removed there; every file
the run will replace must not be a folder; the status file's folder must take a file too. After
the load each file is written beside its name and renamed into place. Should the folder refuse
the reports anyway (a full disk, a folder removed meanwhile), they go to a new folder under the
system's temporary directory, and the warning names it.
"""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from classroom_probe import render, render_text
from classroom_probe.errors import BadInput
from classroom_probe.records import RequestRecord
from classroom_probe.report import Report

REPORT_FILES = ("report.json", "report.md", "report.html", "checks.txt")
RECORDS = "records.jsonl"


def _probe_folder(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise BadInput(option, f"{folder} exists and is not a folder") from exc
    except OSError as exc:
        raise BadInput(option, f"cannot create {folder}: {exc.strerror}") from exc
    if not folder.is_dir():
        raise BadInput(option, f"{folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-write-test-"):
            pass
    except OSError as exc:
        raise BadInput(option, f"cannot write in {folder}: {exc.strerror}") from exc


def _probe_target(path: Path, option: str) -> None:
    # Files are replaced by renaming a new one over them: a writable folder is all they need, unless
    # a folder of the same name stands in the way.
    if path.is_dir():
        raise BadInput(option, f"{path} is a folder; the probe needs to write a file there")


def check_outputs(report_dir: Path | None, records: bool, status_file: Path | None) -> None:
    """Raise BadInput naming the option when anything the run will write cannot be written."""
    if report_dir is not None:
        _probe_folder(report_dir, "--report-dir")
        for name in (*REPORT_FILES, RECORDS) if records else REPORT_FILES:
            _probe_target(report_dir / name, "--report-dir")
    if status_file is not None:
        _probe_folder(status_file.parent, "--status-file")
        _probe_target(status_file, "--status-file")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def render_all(report: Report) -> dict[str, str]:
    return {"report.json": json.dumps(report, indent=1, allow_nan=False) + "\n",
            "report.md": render.markdown(report), "report.html": render.html(report),
            "checks.txt": render_text.checks_table(report) + "\n"}


@dataclass(slots=True)
class Written:
    folder: Path | None
    warnings: list[str] = field(default_factory=list)


def write_reports(folder: Path, report: Report) -> Written:
    """Write the reports into `folder`, else into a fallback folder; returns where and why."""
    texts = render_all(report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            _atomic_write(folder / name, text)
        return Written(folder)
    except OSError as exc:
        reason = f"{exc.strerror or exc}"
    try:
        fallback = Path(tempfile.mkdtemp(prefix="classroom-probe-report-"))
        for name, text in texts.items():
            (fallback / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        return Written(None, [f"could not write the reports to {folder} ({reason}) nor to a temporary folder "
                              f"({exc.strerror}); the verdict above is all that is left"])
    return Written(fallback, [f"could not write the reports to {folder} ({reason}); they are in {fallback}"])


class RecordsWriter:
    """records.jsonl, one line per finished request; a write error stops it with a warning, not the run."""

    def __init__(self, path: Path, origin_ns: int) -> None:
        self.path = path
        self.origin_ns = origin_ns
        self.warning = ""
        self._fh: IO[str] | None = None
        try:
            self._fh = path.open("w", encoding="utf-8")
        except OSError as exc:
            self.warning = f"records.jsonl not written: {exc.strerror}"

    def write(self, rec: RequestRecord) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(rec.to_json(self.origin_ns)) + "\n")
        except OSError as exc:
            self.warning = f"records.jsonl is incomplete: {exc.strerror}"
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                self.warning = f"records.jsonl is incomplete: {exc.strerror}"
            self._fh = None


def join_records(target: Path, parts: list[Path]) -> str:
    """Concatenate the load processes' records files into one; returns a warning or ''."""
    try:
        with target.open("w", encoding="utf-8") as out:
            for part in parts:
                if part.exists():
                    with part.open(encoding="utf-8") as fh:
                        for line in fh:
                            out.write(line)
                    part.unlink()
    except OSError as exc:
        return f"records.jsonl is incomplete: {exc.strerror}"
    return ""
