#!/usr/bin/env bash
# The main job on the local lab: a systemd container stands in for the classroom box, and
# site.yml runs against it exactly as it would against the GPU box (CPU vLLM, tiny model).
#   scripts/lab.sh             create the lab box if needed, give it its Ollama (the stand-in), run site.yml
#   scripts/lab.sh --rollback  playbooks/rollback.yml: back to Ollama from its newest archive, gated
#   scripts/lab.sh --destroy   remove the lab box
# Extra arguments go to ansible-playbook (e.g. -e vllm_server_max_model_len=99999 to see a failing
# vLLM bring Ollama back).
set -euo pipefail
# The rollback's printed time counts from here (playbooks/rollback.yml reads it).
CC_COMMAND_START="$(date +%s.%N)"
export CC_COMMAND_START
. "$(dirname "$0")/common.sh"
cd "$CC_ROOT"
box="${CC_LAB_BOX:-classroom-lab}"
inventory=inventories/lab/hosts.yml

if [ "${1:-}" = "--destroy" ]; then
  podman rm -f "$box" >/dev/null 2>&1 || true
  say "lab box $box removed"
  exit 0
fi

if [ "${1:-}" = "--rollback" ]; then
  shift
  podman container exists "$box" || die "there is no lab box $box: run make lab first"
  podman start "$box" >/dev/null
  say "rolling the lab box back to Ollama (playbooks/rollback.yml)"
  ansible-playbook -i "$inventory" playbooks/rollback.yml "$@"
  say "rollback finished in $(( $(date +%s) - ${CC_COMMAND_START%.*} )) s; the time to a passing gate is printed above"
  say "make lab rolls forward again (vLLM's files stayed on the box)"
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

# Lab only: the classroom box already runs Ollama. The lab box gets the project's Ollama stand-in
# (four ollama@N instances behind HAProxy) once, so the Ollama stage has something real to retire.
say "lab: giving the box its Ollama (the test stand-in; only once per box)"
standin_log="$(mktemp)"
ansible-playbook -i "$inventory" tests/standins/ollama/install.yml >"$standin_log" 2>&1 \
  || { tail -n 40 "$standin_log"; rm -f "$standin_log"; die "the Ollama stand-in did not install (log above)"; }
rm -f "$standin_log"

say "running site.yml against the lab box"
start=$(date +%s)
ansible-playbook -i "$inventory" site.yml "$@"
say "site.yml finished in $(( $(date +%s) - start )) s"
latest="$(ls -1d reports/"$box"/*/ 2>/dev/null | sort | tail -n 1 || true)"
[ -n "$latest" ] && say "gate report: ${latest}report.html (also report.md, report.json)"
[ -f "reports/$box/comparison.html" ] && say "before and after: reports/$box/comparison.html (and comparison.md; docs/PERFORMANCE_COMPARISON.md)"
say "preflight summary: reports/$box/preflight.json"
say "Ollama archive: reports/ollama-testing/$box/OLLAMA_TEST_REPORT.md and MANIFEST.json (the archive stays on the box)"
say "back to Ollama: make lab-rollback"
