#!/usr/bin/env bash
# Record the data-parallel benchmark on a machine with several NVIDIA GPUs (issue 16): every GPU
# of the machine, one process each (NCCL), after a 1-GPU baseline in the same launch:
#   1. the fast loop at its batch (16, split across the GPUs: 16/N per GPU), 1 epoch;
#   2. the throughput loop at its global batch of 4096 (4096/N per GPU; a multiple of N), 3
#      epochs;
#   3. setup-tool report (scaling table, scaling.png with ideal scaling).
# NVLink multicast stays off in NCCL, PyTorch and NVSHMEM (multicast_off, record-common.sh; torchrun's
# workers inherit them): on a shared multi-GPU host a program that uses it can put the GPUs out
# of service. About 5 minutes on 8 H200s.
#   OUT=multi-gpu-bench PYTHON=python3 scripts/record-multi-gpu-bench.sh
set -u
OUT=${OUT:-multi-gpu-bench}
PY=${PYTHON:-python3}
. "$(dirname "$0")/record-common.sh"
start_bench_record "$OUT" 140
N=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
echo "== $N GPUs"
nvidia-smi topo -m
"$PY" -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())"

echo "== 1. fast loop, batch 16 split across $N GPUs (1-GPU baseline first)"
B=$(( 16 / N * N )); [ "$B" -ge "$N" ] || B=$N
time st bench --python "$PY" --device cuda --nproc-per-node "$N" --batch-size "$B" --epochs 1 --label h200x$N --results-dir "$RES"
echo "exit=$?"

TB=$(( 4096 / N * N ))  # the throughput batch, a multiple of N
echo "== 2. throughput loop, global batch $TB ($(( TB / N )) per GPU), 3 epochs"
time st bench --python "$PY" --device cuda --loop throughput --nproc-per-node "$N" --batch-size "$TB" --epochs 3 --label h200x$N --results-dir "$RES"
echo "exit=$?"

echo "== 3. setup-tool report"
st report "$RES" --out "$RES" | cat
echo "report exit=$?"
tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")/log.txt" "$(basename "$OUT")/results"
echo "== done: $OUT.tar.gz"
