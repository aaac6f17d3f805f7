#!/usr/bin/env bash
# Builds the Debian 12 systemd image that stands in for the classroom box, offline from Debian packages.
# Reused when present; FORCE=1 rebuilds it.
set -euo pipefail
. "$(dirname "$0")/common.sh"
if [ "${FORCE:-0}" != 1 ] && podman image exists "$CC_IMAGE"; then exit 0; fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm into a temporary folder (about a minute)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,python3,dbus,sudo,procps,iproute2,curl,ca-certificates \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root.log" 2>&1 \
  || { tail -20 "$root.log"; die "debootstrap failed (log above)"; }
rm -f "$root.log"
# A container has no consoles or hardware: units that wait for them only slow the boot.
for u in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-journald-audit.socket \
         sys-kernel-debug.mount sys-kernel-tracing.mount systemd-remount-fs.service systemd-firstboot.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done
echo classroom-box > "$root/etc/hostname"
: > "$root/etc/machine-id"
apt_clean="$root/var/cache/apt/archives"; rm -f "$apt_clean"/*.deb
say "podman import $CC_IMAGE"
tar -C "$root" -c . | podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' - "$CC_IMAGE" >/dev/null
