#!/usr/bin/env bash
# Builds the prepared lab box image: the Debian 12 systemd image with the lab's vLLM CPU build already
# installed by the vllm_server role's own install tasks (and the Debian packages later stages install).
# Scenarios whose subject is not the installation (monitoring, topology, the gateway) start from it;
# the vllm_server and site scenarios and `make lab` install on the bare image. Reused when its inputs
# are unchanged; FORCE=1 rebuilds it.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$CC_ROOT"
box_image="${CC_BOX_IMAGE:-localhost/classroom-debian12-vllm}"
packages=(haproxy nftables prometheus prometheus-node-exporter)
inputs="$(cat scripts/box-image.yml inventories/lab/group_vars/classroom_boxes/vllm.yml roles/python_app/tasks/*.yml \
  roles/python_app/files/* roles/vllm_server/tasks/install.yml roles/vllm_server/vars/main.yml \
  | sha256sum | cut -c1-16) ${packages[*]} $(podman image inspect -f '{{.Id}}' "$CC_IMAGE" | cut -c1-16)"
if [ "${FORCE:-0}" != 1 ] && podman image exists "$box_image" \
   && [ "$(podman image inspect -f '{{index .Config.Labels "cc.inputs"}}' "$box_image")" = "$inputs" ]; then
  exit 0
fi
wheels="$(bash scripts/build-wheelhouse.sh)"
name="cc-box-image-build-$$"
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
say "building $box_image: the lab's vLLM installed by the role's own tasks (a few minutes, once)"
podman run -d --name "$name" --systemd=always -v "$wheels:/srv/wheelhouse/vllm:ro" "$CC_IMAGE" /sbin/init >/dev/null
for _ in $(seq 1 60); do
  case "$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)" in running|degraded) break ;; esac
  sleep 1
done
ansible-playbook -i "$name," -c containers.podman.podman scripts/box-image.yml \
  -e ansible_python_interpreter=/usr/bin/python3 -e "{\"box_image_packages\": $(printf '%s\n' "${packages[@]}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')}" \
  >"$CC_CACHE/box-image.log" 2>&1 || { tail -30 "$CC_CACHE/box-image.log"; die "installing into the box image failed (log above)"; }
# Packages installed for later stages must not run in a fresh box: the roles start what they need.
podman exec "$name" sh -c 'for u in haproxy nftables prometheus prometheus-node-exporter; do systemctl disable --now $u >/dev/null 2>&1 || true; done; apt-get clean'
podman stop "$name" >/dev/null
podman commit -q --change 'CMD ["/sbin/init"]' --change "LABEL cc.inputs=$inputs" "$name" "$box_image" >/dev/null
say "$box_image ready"
