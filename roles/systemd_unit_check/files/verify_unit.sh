#!/bin/sh
# Usage: verify_unit.sh CANDIDATE UNIT_NAME
# systemd-analyze only judges files whose name ends in a unit suffix; Ansible's candidate has none.
set -eu
candidate="$1"
name="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cp "$candidate" "$dir/$name"
# verify exits non-zero on errors (bad ExecStart, unknown section); warnings alone are printed and make it fail
# too, so a unit that lands is one systemd reads without complaint. A timer or path unit names its service, which
# is looked up beside it: the installed one is copied in when there is one.
case "$name" in
  *.timer|*.path)
    service="${name%.*}.service"
    [ -f "/etc/systemd/system/$service" ] && cp "/etc/systemd/system/$service" "$dir/$service"
    ;;
esac
out="$(systemd-analyze verify "$dir/$name" 2>&1)" || { printf 'systemd rejects the unit: %s\n' "$out" >&2; exit 1; }
if printf '%s' "$out" | grep -q "$name"; then
  printf 'systemd warns about the unit: %s\n' "$out" >&2
  exit 1
fi
