#!/usr/bin/env bash
# Build the classroom_probe wheel and download aiohttp and its dependencies as Python 3.11 wheels,
# so the concurrency_probe role can install the probe on a lab box with no network.
# Prints the wheelhouse folder ($CC_CACHE/wheelhouse/probe).
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$CC_CACHE/wheelhouse/probe"
py="$(find_python 3.11)" || die "Python 3.11 not found (set PYTHON311 or install python3.11): the lab box runs 3.11"
mkdir -p "$out"
rm -f "$out"/classroom_probe-*.whl
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
cp "$wheel" "$out/"
say "downloading the probe's dependencies as Python 3.11 binary wheels"
"$py" -m pip download --disable-pip-version-check --only-binary=:all: --dest "$out" "$out/$(basename "$wheel")" >&2
[ -n "$(ls "$out"/aiohttp-*.whl 2>/dev/null)" ] || die "no aiohttp wheel in $out"
echo "$out"
