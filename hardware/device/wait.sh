#!/usr/bin/env bash
# Runs ON the GPU host. Waits up to SECONDS for the running validation to finish, printing its steps,
# then packs whatever results exist into $OUT (or the folder given second): hw-results.tar.gz,
# results.json and the driver log. Safe to call again while the validation runs on.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
limit="${1:?usage: wait.sh SECONDS [OUT_DIR]}"
out="${2:-${OUT:?set OUT or pass an output folder}}"
pidfile="$CC_HW_ROOT/driver.pid"
export PYTHONPATH="$here/.."
start=$(date +%s)
shown=0
while :; do
  [ -f "$CC_HW_RESULTS/DONE" ] && { hw_say "validation finished"; break; }
  if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    hw_say "no validation running"; break
  fi
  [ $(( $(date +%s) - start )) -ge "$limit" ] && { hw_say "still running after ${limit} s"; break; }
  done_lines=$(grep ' step .*: ' "$CC_HW_RESULTS/driver.log" 2>/dev/null || true)
  count=$(printf '%s' "$done_lines" | grep -c . || true)
  if [ "$count" -gt "$shown" ]; then
    printf '%s\n' "$done_lines" | tail -n +$(( shown + 1 ))
    shown=$count
  fi
  sleep 5
done
mkdir -p "$out"
"$CC_HW_PYTHON" -m hwval status "$CC_HW_RESULTS"
if [ -d "$CC_HW_RESULTS" ]; then
  timeout 120 "$CC_HW_PYTHON" -m hwval bundle "$CC_HW_RESULTS" "$out/hw-results.tar.gz"
  cp "$CC_HW_RESULTS/results.json" "$out/" 2>/dev/null || true
  cp "$CC_HW_RESULTS/driver.log" "$out/" 2>/dev/null || true
fi
tail -c 3000 "$CC_HW_ROOT/driver.out" > "$out/driver-out-tail.txt" 2>/dev/null || true
ls -la "$out"
