#!/usr/bin/env bash
# Unpacks Debian's prometheus package (not installed: nothing starts) into the cache, so the monitoring
# tests can check alert rules with the same promtool the box gets. Reused once unpacked.
set -euo pipefail
. "$(dirname "$0")/common.sh"
dest="$CC_CACHE/tools/prometheus"
[ -x "$dest/usr/bin/promtool" ] && exit 0
command -v apt-get >/dev/null || die "apt-get not found: put Debian's promtool on PATH instead"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "unpacking Debian's prometheus package for promtool (once)"
(cd "$work" && apt-get download prometheus >/dev/null 2>&1) \
  || { apt-get update -qq && (cd "$work" && apt-get download prometheus >/dev/null); } \
  || die "apt-get download prometheus failed"
mkdir -p "$dest"
dpkg-deb -x "$work"/prometheus_*.deb "$dest"
[ -x "$dest/usr/bin/promtool" ] || die "no promtool in Debian's prometheus package"
