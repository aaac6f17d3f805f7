"""Progress while the load runs: the live line on stderr and the status file a caller can poll.

Both say the phase (checking the server, warm-up, measuring, draining, ramp step N/M), the totals
so far and the time left. The status file is JSON, replaced atomically (write, then rename) once a
second and once more at the end with the verdict, so a reader never sees half a file; its keys
are listed in probe/README.md ("Status file").
"""

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns

from classroom_probe.loads import Phase
from classroom_probe.records import LiveSnapshot
from classroom_probe.textfmt import duration, num

NS = 1_000_000_000
STATUS_SCHEMA = 1


@dataclass(slots=True)
class PhaseInfo:
    phase: Phase | None = None
    step: int | None = None
    steps: int | None = None
    students: int | None = None
    later_s: float = 0.0  # time the phases after this one will take at most (ramp)
    drain_s: float = 0.0
    requests: int | None = None  # batch: requests to send


def phase_name(info: PhaseInfo, now_ns: int, label: str = "") -> str:
    if label:
        return label
    p = info.phase
    if p is None:
        return "starting"
    if now_ns < p.warm_end_ns:
        return "warm-up"
    if now_ns < p.stop_ns:
        return "measuring"
    return "draining"


class Progress:
    """Writes the live line (when `show`) and the status file (when `path`); never fails the run."""

    def __init__(self, show: bool, path: Path | None, origin_ns: int | None = None) -> None:
        self.show = show
        self.path = path
        self.origin_ns = origin_ns or perf_counter_ns()
        self.info = PhaseInfo()
        self.label = "checking the server"
        self.warning = ""
        self._tty = sys.stderr.isatty()
        self._wrote_line = False

    def set_phase(self, info: PhaseInfo) -> None:
        self.info = info
        self.label = ""

    def set_label(self, label: str) -> None:
        self.label = label
        self.write_status({})

    def time_left_s(self, now_ns: int, snap: LiveSnapshot, elapsed_s: float) -> float | None:
        p = self.info.phase
        if p is None:
            return None
        if self.info.requests:
            if not snap.done:
                return None
            rate = snap.done / max(elapsed_s, 1e-3)
            return max(0.0, (self.info.requests - snap.done) / rate)
        if now_ns < p.stop_ns:
            return (p.stop_ns - now_ns) / NS + self.info.later_s
        return self.info.later_s  # draining: at most drain_s more, usually much less

    def tick(self, now_ns: int, snap: LiveSnapshot, tok_s: float) -> None:
        elapsed = (now_ns - self.origin_ns) / NS
        left = self.time_left_s(now_ns, snap, elapsed)
        line = self._line(now_ns, snap, tok_s, elapsed, left)
        if self.show:
            if self._tty:
                sys.stderr.write("\r" + line[:160].ljust(110))
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
            self._wrote_line = True
        self.write_status({"state": "running", "phase": phase_name(self.info, now_ns, self.label),
                           "step": self.info.step, "steps": self.info.steps, "students": self.info.students,
                           "elapsed_s": round(elapsed, 1), "time_left_s": None if left is None else round(left, 1),
                           "time_left_is_upper_bound": bool(self.info.later_s), "requests_done": snap.done,
                           "requests_ok": snap.done - snap.failed, "requests_failed": snap.failed,
                           "failures_by_kind": dict(sorted(snap.failures.items())), "in_flight": snap.inflight,
                           "output_tok_s": round(tok_s, 1), "message": line})

    def _line(self, now_ns: int, snap: LiveSnapshot, tok_s: float, elapsed: float, left: float | None) -> str:
        name = phase_name(self.info, now_ns, self.label)
        if self.info.step is not None:
            name = f"ramp step {self.info.step}/{self.info.steps}, {self.info.students} students, {name}"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(snap.failures.items()))
        failed = f"{num(snap.failed)} failed" + (f" ({kinds})" if kinds else "")
        if left is None:
            remaining = ""
        elif name.endswith("draining"):
            remaining = f" | draining, at most {duration(self.info.drain_s + left)} left"
        else:
            remaining = f" | {'at most ' if self.info.later_s else 'about '}{duration(left)} left"
        return (f"[{elapsed:7.1f} s] {name} | {num(snap.done)} done, {num(snap.done - snap.failed)} ok, {failed} | "
                f"{num(snap.inflight)} in flight | {num(round(tok_s))} tok/s{remaining}")

    def end_line(self) -> None:
        if self.show and self._tty and self._wrote_line:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def finish(self, status: str, exit_code: int, report_dir: Path | None, message: str) -> None:
        self.end_line()
        self.write_status({"state": "finished", "phase": "finished", "status": status, "exit_code": exit_code,
                           "report_dir": None if report_dir is None else str(report_dir), "message": message})

    def failed(self, exit_code: int, message: str) -> None:
        self.end_line()
        self.write_status({"state": "failed", "phase": "stopped", "status": None, "exit_code": exit_code,
                           "message": message})

    def write_status(self, fields: dict[str, object]) -> None:
        if self.path is None:
            return
        doc = {"schema": STATUS_SCHEMA, "state": "starting", "phase": self.label or "starting", "pid": os.getpid(),
               "updated_at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            # The status file is a courtesy to pollers: losing it must not lose the run.
            self.warning = f"could not update the status file {self.path}: {exc.strerror}"
            self.path = None
