#!/usr/bin/python
"""Ansible module: retire or bring back a set of Ollama units in a few systemctl calls."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ollama_archive_systemd
short_description: Stop, disable and mask Ollama's units (retire), or unmask, enable and start them again (restore)
description:
  - Works on all units at once (one systemctl call per step, not one per unit), which matters on a rollback
    the class is waiting for. Reads each unit's state first and only acts where it differs.
  - retire first waits (drain_timeout) until no client is connected to the running units' ports any more
    (HAProxy was re-pointed before: the requests it already sent finish), then stops the units, disables
    those that are enabled, masks the persistent-kind ones and writes the retirement drop-in for the units
    systemd cannot mask (their own file is in /etc/systemd/system), then waits until the given ports are
    closed.
  - restore writes the OLLAMA_NOPRUNE drop-in of every unit, removes the retirement drop-ins, reloads
    systemd, unmasks, enables what was enabled, starts what ran, then waits until each URL answers
    /api/version.
  - Check mode reports what would be done and does nothing.
options:
  action:
    description: retire or restore.
    type: str
    required: true
    choices: [retire, restore]
  units:
    description: The units as the archive records them (unit, mask, state.enabled, state.active, url, port).
    type: list
    elements: dict
    required: true
  retired_dropin:
    description: File name of the retirement drop-in.
    type: str
    required: true
  retired_text:
    description: Its content.
    type: str
    default: ''
  noprune_dropin:
    description: File name of the OLLAMA_NOPRUNE drop-in (restore).
    type: str
    default: ''
  noprune_text:
    description: Its content.
    type: str
    default: ''
  daemon_reload:
    description: Reload systemd before acting even when this module wrote no file (unit files were restored).
    type: bool
    default: false
  drain_timeout:
    description: Seconds retire waits for established connections to the units' ports to end before stopping
      them (0 stops at once). Whatever is still connected then is cut off and listed in cut_off.
    type: int
    default: 0
  timeout:
    description: Seconds to wait for ports to close (retire) or instances to answer (restore).
    type: int
    default: 120
author: Classroom Cluster
"""

RETURN = r"""
systemd:
  description: What was (or would be) done, per step (stopped, disabled, masked, dropins, removed_dropins,
    unmasked, enabled, started), and waited (the ports or URLs waited for); retire adds drained_s (seconds
    spent draining) and cut_off (ports still connected when the drain timed out).
  returned: always
  type: dict
"""

import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ollama_archive_units import parse_show

_ENABLED = {"enabled", "enabled-runtime", "linked", "linked-runtime", "alias"}
_RUNNING = {"active", "activating", "reloading"}
SYSTEMD_DIR = Path("/etc/systemd/system")


class Systemd:
    """The systemctl calls, one per step for every unit concerned."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.systemctl = module.get_bin_path("systemctl", required=True)

    def states(self, units: list[str]) -> dict[str, dict[str, str]]:
        rc, out, err = self.module.run_command(
            [self.systemctl, "show", "-p", "Id,LoadState,ActiveState,UnitFileState", "--", *units])
        if rc != 0:
            self.module.fail_json(msg=f"systemctl show failed (exit {rc}): {err.strip()}")
        return {u.name: {"load": u.load_state, "active": u.active_state, "enabled": u.unit_file_state}
                for u in parse_show(out)}

    def run(self, verb: str, units: list[str]) -> None:
        if not units or self.module.check_mode:
            return
        rc, out, err = self.module.run_command([self.systemctl, verb, "--", *units])
        if rc != 0:
            self.module.fail_json(msg=f"systemctl {verb} {' '.join(units)} failed (exit {rc}): {(err or out).strip()}")

    def reload(self) -> None:
        if not self.module.check_mode:
            rc, _, err = self.module.run_command([self.systemctl, "daemon-reload"])
            if rc != 0:
                self.module.fail_json(msg=f"systemctl daemon-reload failed: {err.strip()}")


def write_if_different(path: Path, text: str, check: bool) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    if not check:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
    return True


def remove_if_present(path: Path, check: bool) -> bool:
    if not path.exists():
        return False
    if not check:
        path.unlink()
    return True


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def answers(url: str) -> bool:
    try:
        with urlopen(f"{url}/api/version", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("version"))
    except (URLError, OSError, ValueError):
        return False


def established_on(port: int, tables: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> int:
    """Connections a client holds to a local listening port (state ESTABLISHED, the server's side)."""
    wanted = f":{port:04X}"
    count = 0
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[1].endswith(wanted) and cols[3] == "01":
                count += 1
    return count


def wait_for(check: Any, items: list[Any], timeout: int) -> list[Any]:
    """Polls until check(item) holds for every item; returns the items it never held for."""
    deadline = time.monotonic() + timeout
    pending = list(items)
    while pending and time.monotonic() < deadline:
        pending = [item for item in pending if not check(item)]
        if pending:
            time.sleep(0.5)
    return pending


def retire(module: AnsibleModule, sd: Systemd, units: list[dict[str, Any]]) -> dict[str, Any]:
    p = module.params
    names = [u["unit"] for u in units]
    now = sd.states(names)
    done: dict[str, Any] = {
        "stopped": [n for n in names if now.get(n, {}).get("active") in _RUNNING],
        "disabled": [n for n in names if now.get(n, {}).get("enabled") in _ENABLED],
        "masked": [u["unit"] for u in units
                   if u["mask"] == "persistent" and now.get(u["unit"], {}).get("load") != "masked"],
        "dropins": [],
    }
    ports = [(u["url"].split("://", 1)[1].rsplit(":", 1)[0].strip("[]"), int(u["port"])) for u in units
             if u["state"]["active"] == "active"]
    done["drained_s"] = 0.0
    done["cut_off"] = []
    if p["drain_timeout"] > 0 and not module.check_mode and done["stopped"]:
        start = time.monotonic()
        busy = wait_for(lambda hp: established_on(hp[1]) == 0, ports, p["drain_timeout"])
        done["drained_s"] = round(time.monotonic() - start, 1)
        done["cut_off"] = [f"{h}:{port}" for h, port in busy]
    sd.run("stop", done["stopped"])
    sd.run("disable", done["disabled"])
    sd.run("mask", done["masked"])
    for unit in (u for u in units if u["mask"] == "drop-in"):
        if write_if_different(SYSTEMD_DIR / f"{unit['unit']}.d" / p["retired_dropin"], p["retired_text"],
                              module.check_mode):
            done["dropins"].append(unit["unit"])
    if done["dropins"]:
        sd.reload()
    done["waited"] = [f"{h}:{port}" for h, port in ports]
    if not module.check_mode:
        still = wait_for(lambda hp: not port_open(*hp), ports, p["timeout"])
        if still:
            module.fail_json(msg="Still listening after the units stopped: "
                                 + ", ".join(f"{h}:{port}" for h, port in still), systemd=done)
    return done


def restore(module: AnsibleModule, sd: Systemd, units: list[dict[str, Any]]) -> dict[str, Any]:
    p = module.params
    check = module.check_mode
    done: dict[str, Any] = {"dropins": [], "removed_dropins": []}
    for unit in units:
        folder = SYSTEMD_DIR / f"{unit['unit']}.d"
        if p["noprune_dropin"] and write_if_different(folder / p["noprune_dropin"], p["noprune_text"], check):
            done["dropins"].append(unit["unit"])
        if unit["mask"] == "drop-in" and remove_if_present(folder / p["retired_dropin"], check):
            done["removed_dropins"].append(unit["unit"])
    if p["daemon_reload"] or done["dropins"] or done["removed_dropins"]:
        sd.reload()
    names = [u["unit"] for u in units]
    now = sd.states(names)
    done["unmasked"] = [u["unit"] for u in units if now.get(u["unit"], {}).get("load") == "masked"]
    sd.run("unmask", done["unmasked"])
    done["enabled"] = [u["unit"] for u in units if u["state"]["enabled"] in _ENABLED
                       and (u["unit"] in done["unmasked"] or now.get(u["unit"], {}).get("enabled") not in _ENABLED)]
    sd.run("enable", done["enabled"])
    running = [u for u in units if u["state"]["active"] == "active"]
    done["started"] = [u["unit"] for u in running if now.get(u["unit"], {}).get("active") not in _RUNNING]
    sd.run("start", done["started"])
    done["waited"] = [u["url"] for u in running]
    if not check:
        silent = wait_for(answers, [u["url"] for u in running], p["timeout"])
        if silent:
            module.fail_json(msg=f"No answer on /api/version within {p['timeout']} s from {', '.join(silent)}; "
                                 "journalctl -u <unit> says why.", systemd=done)
    return done


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["retire", "restore"]},
            "units": {"type": "list", "elements": "dict", "required": True},
            "retired_dropin": {"type": "str", "required": True},
            "retired_text": {"type": "str", "default": ""},
            "noprune_dropin": {"type": "str", "default": ""},
            "noprune_text": {"type": "str", "default": ""},
            "daemon_reload": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 120},
            "drain_timeout": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    sd = Systemd(module)
    units = module.params["units"]
    done = retire(module, sd, units) if module.params["action"] == "retire" else restore(module, sd, units)
    changed = any(done[k] for k in done if k not in {"waited", "drained_s", "cut_off"})
    module.exit_json(changed=changed, systemd=done)


if __name__ == "__main__":
    main()
