#!/usr/bin/env bash
# Runs ON the GPU host. Copies the project pieces the validation uses to $CC_HW_ROOT/repo and starts
# `python -m hwval validate` in its own session (setsid), so that it outlives this shell and the call
# that started it. Arguments go to `hwval validate` (e.g. --budget-s 900 --steps host,preflight).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
repo="$(cd "$here/../.." && pwd)"
pidfile="$CC_HW_ROOT/driver.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  hw_die "a validation is already running (pid $(cat "$pidfile")); hardware/device/wait.sh waits for it"
fi
[ -d "$CC_HW_ROOT/model" ] || hw_die "no model staged (stage.sh model)"
rm -rf "${CC_HW_ROOT:?}/repo" "$CC_HW_RESULTS"
mkdir -p "$CC_HW_ROOT/repo/probe"
cp -r "$repo/ansible.cfg" "$repo/roles" "$repo/playbooks" "$repo/hardware" "$CC_HW_ROOT/repo/"
cp -r "$repo/probe/src" "$CC_HW_ROOT/repo/probe/"
site_args=()
[ -d "$CC_HW_SITE" ] && site_args=(--site "$CC_HW_SITE")
cd "$CC_HW_ROOT"
PYTHONPATH="$CC_HW_ROOT/repo/hardware" setsid nohup "$CC_HW_PYTHON" -m hwval validate --root "$CC_HW_ROOT" \
  --repo "$CC_HW_ROOT/repo" --python "$(command -v "$CC_HW_PYTHON")" "${site_args[@]}" "$@" \
  > "$CC_HW_ROOT/driver.out" 2>&1 < /dev/null &
echo $! > "$pidfile"
sleep 2
kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$CC_HW_ROOT/driver.out"; hw_die "the driver exited at once"; }
hw_say "validation running, pid $(cat "$pidfile"); results in $CC_HW_RESULTS"
