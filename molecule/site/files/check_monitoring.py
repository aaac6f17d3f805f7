"""Test code, run on the box: the monitoring stage site.yml left behind, against the real engine.

Usage (the box's python3, standard library only): check_monitoring.py [--wait SECONDS]
Checks: every scrape target of the stage up; every classroom alert rule loaded and evaluated; every `vllm:` metric
name the dashboard's queries use present on the engine's own /metrics page (the real lab engine, so a metric
renamed by a vLLM release fails here); every Grafana expression accepted by this Prometheus, and every one but the
GPU ones (the lab box has none) holding samples from the probe runs of the last minutes. Exits 1 naming each
problem, 0 when all hold; bounded by --wait.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

PROM = "http://127.0.0.1:9090"
ENGINE_METRICS = "http://127.0.0.1:8000/metrics"
CONFIG = Path("/etc/classroom-monitoring")
JOBS = {"prometheus", "node", "gpu", "vllm"}
CLASSROOM_ALERTS = 10
LOOKBACK_S = 900


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as resp:
        body: bytes = resp.read()
        return body


def prom(path: str) -> Any:
    return json.loads(get(PROM + path))["data"]


def targets_up() -> list[str]:
    health = {t["labels"]["job"]: t["health"] for t in prom("/api/v1/targets?state=active")["activeTargets"]}
    missing = JOBS - set(health)
    down = sorted(job for job, state in health.items() if state != "up")
    return ([f"no target for jobs {sorted(missing)}"] if missing else []) + [f"target {job} is not up" for job in down]


def rules_evaluated() -> list[str]:
    rules = [r for g in prom("/api/v1/rules?type=alert")["groups"] for r in g["rules"]]
    classroom = [r for r in rules if r["name"].startswith("Classroom")]
    unhealthy = [r["name"] for r in classroom
                 if r.get("health") != "ok" or not r.get("lastEvaluation", "").startswith("20")]
    problems = [f"rule {name} not evaluated cleanly" for name in unhealthy]
    if len(classroom) != CLASSROOM_ALERTS:
        problems.append(f"{len(classroom)} classroom rules loaded, not {CLASSROOM_ALERTS}")
    return problems


def engine_names() -> list[str]:
    page = get(ENGINE_METRICS).decode()
    present = {line.split("{")[0].split()[0] for line in page.splitlines() if line and not line.startswith("#")}
    panels = json.loads((CONFIG / "dashboard.json").read_text())["panels"]
    used = {name for panel in panels for q in panel["queries"]
            for name in re.findall(r"vllm:[a-zA-Z0-9_:]+", q["expr"])}
    # A histogram's queries name its _bucket/_sum/_count series, which is what the page lists.
    return [f"the engine exports no {name}" for name in sorted(used - present)]


def grafana_expressions() -> tuple[list[str], int]:
    doc = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    exprs = sorted({t["expr"] for p in doc["panels"] for t in p["targets"]})
    now = int(time.time())
    problems = []
    for expr in exprs:
        query = urllib.parse.urlencode({"query": expr, "start": now - LOOKBACK_S, "end": now, "step": 5})
        try:
            result = prom(f"/api/v1/query_range?{query}")["result"]
        except urllib.error.HTTPError as exc:
            problems.append(f"Prometheus refused {expr!r}: {exc.read().decode(errors='replace')[:200]}")
            continue
        values = [v for r in result for _, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
        if not values and "classroom_gpu_" not in expr:
            problems.append(f"no samples in the last {LOOKBACK_S} s for {expr!r}")
    return problems, len(exprs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=90, help="seconds to wait for targets and rules")
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait
    count = 0
    # The expressions are waited for too: the newest verdicts reach Prometheus one scrape after they are
    # written, and verify may start sooner than that after the health check.
    while True:
        try:
            problems = targets_up() + rules_evaluated()
            grafana, count = grafana_expressions()
            problems += grafana
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            problems = [f"Prometheus does not answer: {exc}"]
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(2)
    problems += engine_names()
    for problem in problems:
        print(problem)
    if not problems:
        print(f"targets {sorted(JOBS)} up, {CLASSROOM_ALERTS} classroom rules evaluated, every vllm: name the "
              f"dashboard uses on the engine's page, {count} Grafana expressions answered")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
