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
# The GPU validation has an inventory of its own (a GPU host running the playbook on itself).
ansible-playbook -i inventories/gpu-validation/hosts.yml --syntax-check playbooks/validate.yml >/dev/null \
  || die "syntax check failed: playbooks/validate.yml (inventories/gpu-validation)"
echo "syntax-check: ok"
