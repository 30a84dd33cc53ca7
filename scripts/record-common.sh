# Shared by the GPU recorders (scripts/record-gpu-*.sh, scripts/record-multi-gpu-bench.sh);
# sourced, not run. Needs PY (the Python with torch) set before `st` is called.

# setup-tool from this checkout without installing it: the repository root for setup_tool, and
# the benchmark folder under its installed name (bench/ installs as setup_tool_bench), staged in
# OUT_DIR/.stage. Usage: use_checkout OUT_DIR COLUMNS
use_checkout() {
  local stage
  mkdir -p "$1/.stage"
  stage="$(cd "$1" && pwd)/.stage"
  ln -sfn "$PWD/bench" "$stage/setup_tool_bench"
  export PYTHONPATH="$PWD:$stage${PYTHONPATH:+:$PYTHONPATH}" COLUMNS="$2" PYTHONUNBUFFERED=1
}

# NVLink multicast off (NCCL, PyTorch, NVSHMEM; torchrun's workers inherit it), as on every
# shared GPU host: a program that uses it there can put the GPUs out of service. Harmless on
# one GPU.
multicast_off() {
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
}

st() { "$PY" -m setup_tool "$@"; }

# The bench recorders' start: OUT_DIR/results as RES, setup-tool from the checkout, multicast
# off, everything printed from here on also in OUT_DIR/log.txt, `time` as "wall N s".
# Usage: start_bench_record OUT_DIR COLUMNS
start_bench_record() {
  mkdir -p "$1/results"
  use_checkout "$1" "$2"
  multicast_off
  RES="$1/results"
  exec > >(tee "$1/log.txt") 2>&1
  TIMEFORMAT="wall %R s"
}
