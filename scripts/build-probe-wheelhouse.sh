#!/usr/bin/env bash
# Build the classroom_probe wheel and download its dependencies (aiohttp, nvidia-ml-py) and those of its
# `exporter` extra (prometheus-client) as Python 3.11 wheels, so the concurrency_probe role can install the
# probe, and the monitoring role its GPU exporter, on a lab box with no network.
# Prints the wheelhouse folder ($CC_CACHE/wheelhouse/probe).
set -euo pipefail
. "$(dirname "$0")/common.sh"
# The lab box runs Debian 12's Python 3.11; for a classroom box with another Python set
# CC_PROBE_PYTHON_VERSION (e.g. 3.12 on Ubuntu 24.04): the folder then ends in -py<version>.
target="${CC_PROBE_PYTHON_VERSION:-3.11}"
out="$CC_CACHE/wheelhouse/probe"
[ "$target" = 3.11 ] || out="$out-py$target"
py="$(find_python 3.11)" || py="$(find_python 3.12)" || die "Python 3.11 or 3.12 not found (set PYTHON311 or PYTHON312)"
mkdir -p "$out"
# Rebuild only when the probe's sources changed: lab boxes and molecule mount this folder.
src_hash="$target $(cd "$CC_ROOT/probe" && find pyproject.toml README.md src -type f -name '*' ! -path '*__pycache__*' -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ -f "$out/.source.sha256" ] && [ "$(cat "$out/.source.sha256")" = "$src_hash" ] \
   && ls "$out"/classroom_probe-*.whl "$out"/pip-*.whl >/dev/null 2>&1; then
  echo "$out"; exit 0
fi
build_dir="$(mktemp -d)"
trap 'rm -rf "$build_dir"' EXIT
say "building the classroom_probe wheel"
# Build from a copy so setuptools leaves no build/ or *.egg-info in the working tree.
mkdir "$build_dir/probe"
cp -r "$CC_ROOT/probe/pyproject.toml" "$CC_ROOT/probe/README.md" "$CC_ROOT/probe/src" "$build_dir/probe/"
find "$build_dir/probe" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
if [ -x "$CC_ROOT/.venv/bin/python" ] && "$CC_ROOT/.venv/bin/python" -c 'import build' 2>/dev/null; then
  "$CC_ROOT/.venv/bin/python" -m build --wheel --outdir "$build_dir" "$build_dir/probe" >&2
else
  "$py" -m pip wheel --disable-pip-version-check --no-deps --wheel-dir "$build_dir" "$build_dir/probe" >&2
fi
wheel="$(ls "$build_dir"/classroom_probe-*-py3-none-any.whl)"
# Replace the wheel in one rename so a box installing from the mounted folder never sees none.
cp "$wheel" "$out/.$(basename "$wheel").tmp"
find "$out" -maxdepth 1 -name 'classroom_probe-*.whl' ! -name "$(basename "$wheel")" -delete
mv -f "$out/.$(basename "$wheel").tmp" "$out/$(basename "$wheel")"
say "downloading the probe's dependencies (with the exporter extra's) as Python $target binary wheels"
"$py" -m pip download --disable-pip-version-check --only-binary=:all: --python-version "$target" \
  --dest "$out" "$out/$(basename "$wheel")[exporter]" >&2
# Debian's python3 has no ensurepip: a pip wheel lets the role build its venv with no network.
"$py" -m pip download --disable-pip-version-check --only-binary=:all: --python-version "$target" --no-deps \
  --dest "$out" pip >&2
[ -n "$(ls "$out"/aiohttp-*.whl 2>/dev/null)" ] || die "no aiohttp wheel in $out"
[ -n "$(ls "$out"/nvidia_ml_py-*.whl 2>/dev/null)" ] || die "no nvidia-ml-py wheel in $out"
[ -n "$(ls "$out"/prometheus_client-*.whl 2>/dev/null)" ] || die "no prometheus-client wheel in $out (the exporter extra)"
echo "$src_hash" > "$out/.source.sha256"
echo "$out"
