#!/usr/bin/env bash
# Installs the Debian packages the lab and the tests need: podman (with runc) and debootstrap.
set -euo pipefail
. "$(dirname "$0")/common.sh"
pkgs=(podman runc debootstrap uidmap slirp4netns fuse-overlayfs make chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} with your package manager"
  [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root (run as root or install them first)"
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
podman --version >/dev/null || die "podman does not run"
