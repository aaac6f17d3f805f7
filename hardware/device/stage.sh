#!/usr/bin/env bash
# Runs ON the GPU host. Stages what the validation needs, across several device calls, under $CC_HW_ROOT:
#   stage.sh deps DIR...        install the wheels of each DIR into the site folder (pip --no-index --no-deps --target)
#   stage.sh model DIR          copy a model folder (config + tokenizer) to $CC_HW_ROOT/model/
#   stage.sh part FILE...       keep chunks of the vLLM wheel until all have arrived
#   stage.sh vllm SHA256_FILE   join the chunks, check the sha256, install vLLM into the site folder
#   stage.sh check              what is installed, what the carried packages still miss, GPUs seen
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
mkdir -p "$CC_HW_SITE" "$CC_HW_STAGE"

# pip warns for every folder already in the target (bin/ after the first install): noise, not an error.
pip_target() {
  local log rc=0
  log="$("$CC_HW_PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$CC_HW_SITE" "$@" 2>&1)" || rc=$?
  printf '%s\n' "$log" | grep -v -e 'already exists. Specify --upgrade' -e '^$' || true
  return "$rc"
}

cmd="${1:-}"; [ -n "$cmd" ] || hw_die "usage: stage.sh deps|model|part|vllm|check ..."
shift
case "$cmd" in
  deps)
    [ "$#" -gt 0 ] || hw_die "stage.sh deps DIR..."
    for dir in "$@"; do
      n=$(find "$dir" -maxdepth 1 -name '*.whl' | wc -l)
      [ "$n" -gt 0 ] || hw_die "no wheels in $dir"
      hw_say "installing $n wheels from $dir"
      pip_target "$dir"/*.whl
    done
    hw_say "site now holds $(find "$CC_HW_SITE" -maxdepth 1 -name '*.dist-info' | wc -l) distributions"
    ;;
  model)
    [ "$#" -eq 1 ] && [ -f "$1/config.json" ] || hw_die "stage.sh model DIR (a folder with config.json)"
    mkdir -p "$CC_HW_ROOT/model"
    rm -rf "${CC_HW_ROOT:?}/model/$(basename "$1")"
    cp -r "$1" "$CC_HW_ROOT/model/"
    hw_say "model at $CC_HW_ROOT/model/$(basename "$1"): $(ls "$CC_HW_ROOT/model/$(basename "$1")" | tr '\n' ' ')"
    ;;
  part)
    [ "$#" -gt 0 ] || hw_die "stage.sh part FILE..."
    for f in "$@"; do cp "$f" "$CC_HW_STAGE/"; done
    hw_say "chunks staged: $(cd "$CC_HW_STAGE" && ls vllm.part* 2>/dev/null | tr '\n' ' ')"
    ;;
  vllm)
    [ "$#" -eq 1 ] && [ -f "$1" ] || hw_die "stage.sh vllm SHA256_FILE"
    wheel="$(awk '{print $2; exit}' "$1")"
    [ -n "$wheel" ] || hw_die "no wheel name in $1"
    cat "$CC_HW_STAGE"/vllm.part* > "$CC_HW_STAGE/$wheel"
    sums="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    (cd "$CC_HW_STAGE" && sha256sum -c "$sums") || hw_die "sha256 mismatch: a chunk is missing or damaged"
    hw_say "installing $wheel"
    pip_target "$CC_HW_STAGE/$wheel"
    rm -f "$CC_HW_STAGE/$wheel"
    PYTHONPATH="$CC_HW_SITE" timeout 180 "$CC_HW_PYTHON" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())'
    ;;
  check)
    nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version --format=csv,noheader || true
    PYTHONPATH="$here/..:$CC_HW_SITE" timeout 120 "$CC_HW_PYTHON" -m hwval.depcheck "$CC_HW_SITE"
    ;;
  *) hw_die "unknown command $cmd" ;;
esac
