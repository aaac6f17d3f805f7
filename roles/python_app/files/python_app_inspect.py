"""Reads everything the python_app role decides on, in one round trip, and prints it as one JSON object.

Runs on the box under the interpreter the venv is built from (python_app_python), which is not the
controller's: the code keeps to Python 3.7, so that an interpreter that is too old for the application
still runs it and gets a clear "too old" message instead of a syntax error.
Input: one JSON object on stdin (tasks/inspect.yml builds it). Nothing on the box is changed.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from typing import Any

# Runs under the venv's own interpreter: every installed distribution and its version, by canonical name.
LIST_DISTRIBUTIONS = """
import importlib.metadata as m, json, re
found = {}
for d in m.distributions():
    name = d.metadata["Name"]
    if name:
        found[re.sub(r"[-_.]+", "-", name).lower()] = d.version
print(json.dumps(found))
"""


def canonical(name: str) -> str:
    """The distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(spec: str) -> tuple[str, str]:
    """Canonical name and version of a `name[extras]==version` requirement."""
    name, _, version = spec.partition("==")
    return canonical(re.sub(r"\[.*\]$", "", name.strip())), version.strip()


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_key(path: str) -> tuple[int, ...]:
    """Numeric sort key of a pip wheel's version, so that pip 26 sorts after pip 9."""
    version = os.path.basename(path).split("-")[1]
    return tuple(int(part) for part in re.findall(r"\d+", version))


def read_installed(venv_python: str) -> tuple[dict[str, str], str]:
    """Installed distributions of the venv, and why they could not be read ("" when they could)."""
    if not os.path.exists(venv_python):
        return {}, ""
    try:
        proc = subprocess.run([venv_python, "-c", LIST_DISTRIBUTIONS], capture_output=True, text=True, check=False)
    except OSError as exc:
        return {}, str(exc)
    if proc.returncode != 0:
        return {}, (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    found: dict[str, str] = json.loads(proc.stdout)
    return found, ""


def read_record(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def package_name(package: str) -> str:
    """A Debian package name without an architecture or version suffix (libnuma1:amd64, foo=1.2)."""
    return re.split(r"[:=]", package, maxsplit=1)[0]


def missing_os_packages(packages: list[str]) -> list[str]:
    """The listed Debian packages dpkg does not report as installed (all of them where there is no dpkg)."""
    if not packages:
        return []
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}\n", *map(package_name, packages)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return list(packages)
    # Status-Abbrev: the second letter is the current state; "i" is installed.
    present = {line.split("|", 1)[1] for line in proc.stdout.splitlines() if line[1:2] == "i" and "|" in line}
    return [package for package in packages if package_name(package) not in present]


def inspect(args: dict[str, Any]) -> dict[str, Any]:
    venv = args["venv"]
    venv_python = os.path.join(venv, "bin", "python")
    wheelhouse = args["wheelhouse"]
    installed, venv_error = read_installed(venv_python)
    record = read_record(args["record"])

    wheels: list[str] = []
    pip_wheels: list[str] = []
    if wheelhouse and os.path.isdir(wheelhouse):
        prefix = re.sub(r"[-_.]+", "_", args["package"]).lower() + "-" + args["version"].lower() + "-"
        every = sorted(glob.glob(os.path.join(wheelhouse, "*.whl")))
        wheels = [path for path in every if os.path.basename(path).lower().startswith(prefix)]
        pip_wheels = sorted((path for path in every if os.path.basename(path).startswith("pip-")), key=version_key)
    wheel = wheels[0] if len(wheels) == 1 else ""
    wheel_sha = sha256(wheel) if wheel else ""

    main = installed.get(canonical(args["package"]), "")
    missing_requirements = [spec for spec in args["requirements"] if installed.get(pinned(spec)[0]) != pinned(spec)[1]]
    recorded_sha = (record or {}).get("wheel_sha256")
    # Same version, other wheel: pip alone would keep the old build, so the wheel is reinstalled.
    rebuilt = bool(wheel_sha) and main == args["version"] and recorded_sha != wheel_sha

    venv_pip = os.path.exists(os.path.join(venv, "bin", "pip"))
    venv_package = args["venv_os_package"]
    missing = missing_os_packages([*args["os_packages"], *([venv_package] if venv_package else [])])
    os_missing = [package for package in args["os_packages"] if package in missing]
    if venv_pip:
        bootstrap = "ready"
    elif importlib.util.find_spec("ensurepip") is not None:
        bootstrap = "ensurepip"
    elif pip_wheels:
        bootstrap = "wheel"
    elif venv_package in missing and (args["may_apt"] or venv_package in args["os_packages"]):
        bootstrap = "apt"
    else:
        bootstrap = "none"
    apt = os_missing + ([venv_package] if bootstrap == "apt" and venv_package not in os_missing else [])

    return {
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "venv_python": os.path.exists(venv_python),
        "venv_pip": venv_pip,
        "venv_error": venv_error,
        "installed_version": main,
        "missing_requirements": missing_requirements,
        "remove_present": [name for name in args["remove"] if canonical(name) in installed],
        "record": record,
        "wheelhouse_exists": bool(wheelhouse) and os.path.isdir(wheelhouse),
        "wheels": [os.path.basename(path) for path in wheels],
        "wheel": wheel,
        "wheel_sha256": wheel_sha,
        "rebuilt": rebuilt,
        "install": main != args["version"] or bool(missing_requirements),
        "bootstrap": bootstrap,
        "pip_wheel": pip_wheels[-1] if pip_wheels else "",
        "os_missing": os_missing,
        "venv_os_package_missing": venv_package in missing,
        "apt": apt,
    }


if __name__ == "__main__":
    print(json.dumps(inspect(json.load(sys.stdin))))
