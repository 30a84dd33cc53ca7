#!/usr/bin/env bash
# Record the benchmark's CUDA paths on a machine with one NVIDIA GPU (or more: GPU 0 is used):
#   1. setup-tool bench --nproc-per-node 1: the data-parallel fast loop, DDP over NCCL, 2 epochs
#      (with one GPU the collective path runs for real: process group, all-reduce, time split);
#   2. the throughput loop at batch 16384 (3 batches per epoch; its warm-up used to read past
#      the last batch: a device-side assert) and at 60000 (one batch per epoch), 2 epochs each;
#   3. the fast loop with --precision tf32 through setup-tool (setup-tool used to refuse it);
#   4. a --max-steps 50 quick check (the test set is cut to what the run trained on);
#   5. setup-tool report over all of it (tables and plots).
# Step 1 also runs 1b (compiled data-parallel steps), 1c (data-parallel throughput loop at batch
# 4096) and 1d (the plain throughput loop at 4096, 1c's reference).
# About 7 minutes on an H200 (most of it torch.compile warm-ups); ONLY_DDP=1 runs step 1 and
# the report only (about 4 minutes). Run from the repository root with a Python that has torch
# (default python3); nothing is installed or changed:
#   OUT=gpu-bench PYTHON=python3 scripts/record-gpu-bench.sh
#   OUT=gpu-ddp PYTHON=python3 ONLY_DDP=1 scripts/record-gpu-bench.sh
# Everything lands in $OUT (log.txt, results/, a .tar.gz of both).
set -u
OUT=${OUT:-gpu-bench}
PY=${PYTHON:-python3}
. "$(dirname "$0")/record-common.sh"
start_bench_record "$OUT" 120

echo "== machine"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version(), 'gpus', torch.cuda.device_count())"

echo "== 1. data-parallel fast loop, 1 GPU (NCCL), 2 epochs (--capture auto: eager for the fast loop, no graph)"
time st bench --python "$PY" --device cuda --nproc-per-node 1 --epochs 2 --label h200 --results-dir "$RES"
echo "exit=$?"
echo "== 1b. the same, compiled DDP steps (--capture compile), 1 epoch: what compiling gains or costs"
time st bench --python "$PY" --device cuda --nproc-per-node 1 --capture compile --epochs 1 --label h200-compiled --results-dir "$RES"
echo "exit=$?"
echo "== 1c. data-parallel throughput loop at batch 4096 (compute-bound steps), 2 epochs"
time st bench --python "$PY" --device cuda --nproc-per-node 1 --loop throughput --batch-size 4096 --epochs 2 --label h200 --results-dir "$RES"
echo "exit=$?"
echo "== 1d. the plain throughput loop at batch 4096 (one CUDA graph per step), 2 epochs: 1c's reference"
time st bench --python "$PY" --device cuda --loop throughput --batch-size 4096 --epochs 2 --label h200 --results-dir "$RES"
echo "exit=$?"

if [ "${ONLY_DDP:-0}" = 1 ]; then
  echo "== (ONLY_DDP=1: steps 2-5 skipped)"
else

echo "== 2a. throughput loop, batch 16384 (3 batches per epoch), 2 epochs"
time st bench --python "$PY" --device cuda --loop throughput --batch-size 16384 --epochs 2 --label h200 --results-dir "$RES"
echo "exit=$?"
echo "== 2b. throughput loop, batch 60000 (1 batch per epoch), 2 epochs"
time st bench --python "$PY" --device cuda --loop throughput --batch-size 60000 --epochs 2 --label h200 --results-dir "$RES"
echo "exit=$?"

echo "== 3. fast loop with --precision tf32 through setup-tool"
time st bench --python "$PY" --device cuda --loop fast --precision tf32 --epochs 1 --label h200 --results-dir "$RES"
echo "exit=$?"

echo "== 4. quick check: seed loop, --max-steps 50"
time st bench --python "$PY" --device cuda --max-steps 50 --label h200 --results-dir "$RES"
echo "exit=$?"

echo "== 5. refusals before any CUDA work (expected: exit 2, one error line each)"
st bench --python "$PY" --device cuda --nproc-per-node 2 --batch-size 15; echo "exit=$?"
st bench --python "$PY" --device cuda --nproc-per-node 8; echo "exit=$?"

fi

echo "== 6. setup-tool report"
st report "$RES" --out "$RES" | cat
echo "report exit=$?"
"$PY" - "$RES" <<'PY'
# The data-parallel result's distributed block, for the record.
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*-x1.json")):
    result = json.loads(path.read_text())
    dist = result["distributed"]
    dist["topology"]["ranks"] = dist["topology"]["ranks"][:2]
    keys = ("capture", "capture_note", "ddp_options", "optimizer", "precision")
    print(path.name, json.dumps({k: result["loop"].get(k) for k in keys}, indent=1))
    print(path.name, json.dumps(dist, indent=1))
PY
tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")/log.txt" "$(basename "$OUT")/results"
echo "== done: $OUT.tar.gz"
