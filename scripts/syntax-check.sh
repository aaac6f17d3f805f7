#!/usr/bin/env bash
# ansible-playbook --syntax-check on every playbook, against both inventories.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$CC_ROOT"
shopt -s nullglob
for inv in inventories/lab/hosts.yml inventories/classroom/hosts.yml; do
  for pb in site.yml playbooks/*.yml; do
    ansible-playbook -i "$inv" --syntax-check "$pb" >/dev/null || die "syntax check failed: $pb ($inv)"
  done
done
# The GPU validation renders with the vllm_server role from its own inventory.
ansible-playbook -i hardware/inventory/hosts.yml --syntax-check hardware/playbooks/*.yml >/dev/null \
  || die "syntax check failed: hardware/playbooks"
echo "syntax-check: ok"
