#!/usr/bin/python3
"""CPU and memory of the monitoring stack on the box, while idle and during a probe run.

Usage, on the box as root (the box's python3; standard library only):
    python3 stack_cost.py [--window 120] [--probe-duration 120] [--out stack-cost.json]

From the machine running the lab container:
    podman cp benchmarks/monitoring/stack_cost.py classroom-lab:/var/tmp/ && \
    podman exec classroom-lab python3 /var/tmp/stack_cost.py --out /var/tmp/stack-cost.json

For each unit of the stack (Prometheus, node-exporter, the GPU exporter, the dashboard, the verdicts' oneshot,
Alertmanager when installed) it reads every process of the unit's control group once a second: CPU time from
/proc/<pid>/stat (so it works where systemd's own CPU accounting is off, as in cgroup v1 containers) and memory as
PSS from /proc/<pid>/smaps_rollup (RSS where that file is missing). Two windows: idle (nothing but the stack and
an idle vLLM), then a probe run of the gate's probe (its run file, --duration) with the same sampling. It reports,
per unit and for the whole stack: CPU as a share of one core (mean over the window), and memory (mean and peak).
The verdicts' oneshot runs only now and then: its CPU is the time its runs took within the window.
Run it on a quiet machine: other load on the cores changes nothing in the figures' meaning (CPU time is the
stack's own), but a busy box makes the probe run's load and Prometheus' work differ from a classroom's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

UNITS = ("prometheus.service", "prometheus-node-exporter.service", "classroom-gpu-exporter.service",
         "classroom-dashboard.service", "classroom-verdicts.service", "prometheus-alertmanager.service")
PROBE = ["/opt/classroom-probe/venv/bin/python", "-m", "classroom_probe", "run",
         "--config", "/etc/classroom-probe/run.json", "--quiet"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class UnitFigures:
    cpu_core_share_mean: float = 0.0
    memory_mib_mean: float = 0.0
    memory_mib_peak: float = 0.0
    samples: int = 0


@dataclass
class Window:
    name: str
    seconds: float = 0.0
    units: dict[str, UnitFigures] = field(default_factory=dict)
    stack: UnitFigures = field(default_factory=UnitFigures)


def control_group(unit: str) -> str | None:
    out = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit], capture_output=True,
                         text=True, check=False).stdout.strip()
    return out or None


def cgroup_pids(group: str) -> list[int]:
    """The unit's processes: from the unified hierarchy, or from any v1 hierarchy that has the group."""
    candidates = [Path("/sys/fs/cgroup") / group.lstrip("/") / "cgroup.procs"]
    candidates += [p / group.lstrip("/") / "cgroup.procs" for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    for path in candidates:
        try:
            return [int(x) for x in path.read_text().split()]
        except OSError:
            continue
    return []


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except OSError:
        return 0


def sample(units: list[str]) -> dict[str, tuple[dict[int, float], int]]:
    """Per unit: CPU seconds by pid (a pid that ends between samples takes its time with it) and memory in KiB."""
    out = {}
    for unit in units:
        group = control_group(unit)
        pids = cgroup_pids(group) if group else []
        out[unit] = ({pid: cpu_seconds(pid) for pid in pids}, sum(memory_kib(pid) for pid in pids))
    return out


def measure(name: str, units: list[str], seconds: float) -> Window:
    window = Window(name)
    cpu: dict[str, float] = dict.fromkeys(units, 0.0)
    mem: dict[str, list[int]] = {u: [] for u in units}
    last = sample(units)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(1.0)
        now = sample(units)
        for unit in units:
            before, after = last[unit][0], now[unit][0]
            # Processes present in both samples: their CPU time since the last one. New ones: all of theirs.
            cpu[unit] += sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())
            mem[unit].append(now[unit][1])
        last = now
    window.seconds = round(time.monotonic() - start, 1)
    total_mem = [sum(mem[u][i] for u in units) for i in range(min(len(m) for m in mem.values()))]
    for unit in units:
        window.units[unit] = UnitFigures(round(cpu[unit] / window.seconds, 4),
                                         round(sum(mem[unit]) / len(mem[unit]) / 1024, 1),
                                         round(max(mem[unit]) / 1024, 1), len(mem[unit]))
    window.stack = UnitFigures(round(sum(cpu.values()) / window.seconds, 4),
                               round(sum(total_mem) / len(total_mem) / 1024, 1), round(max(total_mem) / 1024, 1),
                               len(total_mem))
    return window


def table(windows: list[Window]) -> str:
    lines = ["| window | unit | CPU (share of one core) | memory mean (MiB) | memory peak (MiB) |",
             "|---|---|---|---|---|"]
    for w in windows:
        for unit, f in [*w.units.items(), ("whole stack", w.stack)]:
            lines.append(f"| {w.name} ({w.seconds:.0f} s) | {unit} | {f.cpu_core_share_mean:.3f} | "
                         f"{f.memory_mib_mean:.1f} | {f.memory_mib_peak:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--window", type=float, default=120.0, help="seconds of the idle window")
    ap.add_argument("--probe-duration", type=float, default=120.0, help="seconds of the probe run (0: no probe run)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    units = [u for u in UNITS if control_group(u)]
    if not units:
        print("none of the monitoring units is known to systemd here: run this on the box", file=sys.stderr)
        return 2
    windows = [measure("idle", units, args.window)]
    if args.probe_duration > 0:
        report_dir = Path("/var/tmp/stack-cost-probe")
        probe = subprocess.Popen([*PROBE, "--warmup", "0", "--duration", str(args.probe_duration),
                                  "--report-dir", str(report_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        try:
            windows.append(measure("probe run", units, args.probe_duration))
        finally:
            _, err = probe.communicate(timeout=args.probe_duration + 300)
        if probe.returncode not in (0, 1, 3):
            print(f"the probe run ended with exit {probe.returncode}: {err.strip()[-500:]}", file=sys.stderr)
    print(table(windows))
    if args.out:
        args.out.write_text(json.dumps([asdict(w) for w in windows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
