#!/usr/bin/env bash
# Creates .venv (Python 3.12) with the pinned control-node tools: Ansible, Molecule, linters, pytest.
set -euo pipefail
. "$(dirname "$0")/common.sh"
venv="$CC_ROOT/.venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$CC_ROOT/requirements/dev.txt" "$CC_ROOT/requirements/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
py="$(find_python 3.12)" || die "Python 3.12 not found. ansible-core 2.21 needs it. Install it (e.g. 'pyenv install 3.12' or your distribution's python3.12) or point PYTHON312 at an interpreter."
say "creating .venv with $("$py" --version)"
"$py" -m venv --clear "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$CC_ROOT/requirements/dev.txt" -c "$CC_ROOT/requirements/constraints.txt"
echo "$want" > "$stamp"
