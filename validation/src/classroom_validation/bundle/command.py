"""The tools a build runs (pip, the container tool), with one way to fail: a BundleError that says what was being
done and ends with the tool's last lines, never a traceback."""

from __future__ import annotations

import subprocess

from classroom_validation.bundle.spec import BundleError


def tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def run(command: list[str], what: str, missing_hint: str = "") -> subprocess.CompletedProcess[str]:
    """Run `command`; `what` completes "... failed" (e.g. "pip could not resolve x" reads "x failed")."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        hint = f" ({missing_hint})" if missing_hint else ""
        raise BundleError(f"{what} failed: {command[0]} not found{hint}") from exc
    if done.returncode != 0:
        raise BundleError(f"{what} failed (exit {done.returncode}): {tail(done.stderr or done.stdout)}")
    return done
