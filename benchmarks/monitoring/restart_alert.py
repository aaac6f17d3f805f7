#!/usr/bin/python3
"""How long after the engine dies the teacher sees ClassroomVLLMRestarted firing, and where the time goes.

Usage, on the box as root (the box's python3; standard library only), with the monitoring stage applied:
    python3 restart_alert.py [--unit vllm.service] [--prometheus http://127.0.0.1:9090] [--out restart-alert.json]

From the machine running the lab container:
    podman cp benchmarks/monitoring/restart_alert.py classroom-lab:/var/tmp/ && \
    podman exec classroom-lab python3 /var/tmp/restart_alert.py --out /var/tmp/restart-alert.json

It waits until the alert is not firing (an earlier restart inside the rule's window would fire it at once),
kills the unit's main process with SIGKILL (as a crash would), then polls every 0.2 s: systemd's restart
counter (NRestarts), the engine's /health, and Prometheus' alerts API. It reports the seconds from the kill
to systemd's restart, to the alert firing and to a healthy engine. The alert fires on node-exporter's
restart counter, so its delay is systemd's restart delay plus up to one scrape interval plus up to one
evaluation interval. Run it on a quiet machine; bounded by --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

ALERT = "ClassroomVLLMRestarted"


@dataclass
class Result:
    unit: str
    killed_pid: int
    restart_s: float | None
    alert_firing_s: float | None
    healthy_s: float | None
    scrape_interval: str
    evaluation_interval: str
    load_average_at_kill: tuple[float, float, float]


def show(unit: str, prop: str) -> str:
    argv = ["systemctl", "show", "-p", prop, "--value", unit]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def get_json(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            data: dict[str, object] = json.load(response)
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def firing(prometheus: str) -> bool:
    doc = get_json(f"{prometheus}/api/v1/alerts") or {}
    data = doc.get("data")
    alerts = data.get("alerts", []) if isinstance(data, dict) else []
    return any(a.get("labels", {}).get("alertname") == ALERT and a.get("state") == "firing" for a in alerts)


def config_value(prometheus: str, key: str) -> str:
    doc = get_json(f"{prometheus}/api/v1/status/config") or {}
    data = doc.get("data")
    text = str(data.get("yaml", "")) if isinstance(data, dict) else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith(key)), "?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", default="vllm.service")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--health", default="http://127.0.0.1:8000/health")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while firing(args.prometheus):
        if time.monotonic() > deadline:
            print(f"{ALERT} kept firing from an earlier restart until the timeout", file=sys.stderr)
            return 1
        time.sleep(5)
    pid = int(show(args.unit, "MainPID") or 0)
    restarts = show(args.unit, "NRestarts")
    if pid <= 0 or not healthy(args.health):
        print(f"{args.unit} is not running and healthy: nothing to kill", file=sys.stderr)
        return 1
    load = os.getloadavg()
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    restart_s = alert_s = healthy_s = None
    deadline = start + args.timeout
    while time.monotonic() < deadline and None in (restart_s, alert_s, healthy_s):
        now = time.monotonic() - start
        if restart_s is None and show(args.unit, "NRestarts") != restarts:
            restart_s = round(now, 1)
        if alert_s is None and firing(args.prometheus):
            alert_s = round(now, 1)
        if healthy_s is None and restart_s is not None and healthy(args.health):
            healthy_s = round(now, 1)
        time.sleep(0.2)
    result = Result(args.unit, pid, restart_s, alert_s, healthy_s, config_value(args.prometheus, "scrape_interval"),
                    config_value(args.prometheus, "evaluation_interval"), load)
    text = json.dumps(asdict(result), indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0 if alert_s is not None else 1


if __name__ == "__main__":
    sys.exit(main())
