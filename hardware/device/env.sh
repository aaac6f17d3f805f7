# Sourced by every script in hardware/device/: the folders of a validation run on the GPU host, and
# the NVLink-multicast switches that must be off in every process started there.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
CC_HW_ROOT="${CC_HW_ROOT:-/var/tmp/classroom-hw}"
CC_HW_PYTHON="${CC_HW_PYTHON:-python3}"
CC_HW_SITE="$CC_HW_ROOT/site"
CC_HW_STAGE="$CC_HW_ROOT/stage"
CC_HW_RESULTS="$CC_HW_ROOT/results"
export CC_HW_ROOT CC_HW_PYTHON CC_HW_SITE CC_HW_STAGE CC_HW_RESULTS
hw_say() { printf '[hw %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
hw_die() { printf '[hw] ERROR: %s\n' "$*" >&2; exit 1; }
