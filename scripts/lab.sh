#!/usr/bin/env bash
# The main job on the local lab: a systemd container stands in for the classroom box, and
# site.yml runs against it exactly as it would against the GPU box (CPU vLLM, tiny model).
#   scripts/lab.sh            create the lab box if needed and run site.yml
#   scripts/lab.sh --destroy  remove the lab box
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$CC_ROOT"
box="${CC_LAB_BOX:-classroom-lab}"

if [ "${1:-}" = "--destroy" ]; then
  podman rm -f "$box" >/dev/null 2>&1 || true
  say "lab box $box removed"
  exit 0
fi

vllm_wheels="$(bash scripts/build-wheelhouse.sh)"
probe_wheels="$(bash scripts/build-probe-wheelhouse.sh)"

if ! podman container exists "$box"; then
  say "creating the lab box $box (Debian 12 with systemd; stands in for the classroom GPU box)"
  # vLLM's CPU engine shares tensors through /dev/shm; 64 MB (podman's default) is too small.
  podman run -d --name "$box" --hostname "$box" --systemd=always --shm-size=1g \
    --ulimit nofile=10000:10000 --ulimit nproc=4096:4096 \
    -v "$vllm_wheels:/srv/wheelhouse/vllm:ro" -v "$probe_wheels:/srv/wheelhouse/probe:ro" \
    "$CC_IMAGE" /sbin/init >/dev/null
fi
podman start "$box" >/dev/null
for _ in $(seq 1 60); do
  state="$(podman exec "$box" systemctl is-system-running 2>/dev/null || true)"
  case "$state" in running|degraded) break ;; esac
  sleep 1
done

say "running site.yml against the lab box"
start=$(date +%s)
ansible-playbook -i inventories/lab/hosts.yml site.yml "$@"
say "site.yml finished in $(( $(date +%s) - start )) s"
latest="$(ls -1d reports/"$box"/*/ 2>/dev/null | sort | tail -n 1 || true)"
[ -n "$latest" ] && say "gate report: ${latest}report.html (also report.md, report.json)"
say "preflight summary: reports/$box/preflight.json"
say "next milestone: the Ollama archive stage (roles/ollama_archive) runs between preflight and vLLM."
