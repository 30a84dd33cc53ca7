#!/usr/bin/env bash
# Record the doctor's collective check (`setup-tool doctor --distributed`) on a machine with
# NVIDIA GPUs: the passing run (text and --json), a rank killed in the middle of the all-reduce,
# a rank that hangs there, and the raw nvidia-smi readings behind the topology check (for
# tests/data/). With one GPU the NCCL code path still runs for real: one rank, one communicator.
#
# Run from the repository root with a Python that has torch (default: python3); setup-tool runs
# from this checkout (PYTHONPATH), nothing is installed:
#   OUT=gpu-collective PYTHON=python3 scripts/record-gpu-collective.sh
# Everything lands in $OUT (and $OUT.tar.gz); each command's exit code is printed.
# On one H200 it takes about two minutes: each doctor run imports torch in the probe and in each
# rank (seconds), and the hang run waits for its own --timeout (45 s) by design.
#
# With two or more GPUs, NVLink SHARP / multicast are turned off for every process this script
# starts (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1), for
# machines whose NVSwitch multicast is not available to the user; the doctor then reports
# NCCL_NVLS_ENABLE=0 under "NCCL variables" as a warning, which is expected there.
set -u
OUT=${OUT:-gpu-collective}
PY=${PYTHON:-python3}
mkdir -p "$OUT/raw"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" COLUMNS=110 PYTHONUNBUFFERED=1
st() { "$PY" -m setup_tool "$@"; }

GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
echo "== $GPUS GPU(s)"
if [ "${GPUS:-0}" -ge 2 ]; then
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  echo "multicast off: NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1"
fi

echo "== raw topology readings"
nvidia-smi topo -m > "$OUT/raw/nvidia-smi-topo-m.txt" 2>&1; echo "topo -m exit=$?"
nvidia-smi --query-gpu=index,pcie.link.gen.max,pcie.link.width.max --format=csv,noheader,nounits \
  > "$OUT/raw/nvidia-smi-query-pcie.csv" 2>&1; echo "pcie query exit=$?"
nvidia-smi topo -p2p r > "$OUT/raw/nvidia-smi-topo-p2p-r.txt" 2>&1; echo "topo -p2p r exit=$?"
df -B1 /dev/shm > "$OUT/raw/df-dev-shm.txt" 2>&1
cat "$OUT/raw/nvidia-smi-topo-m.txt" "$OUT/raw/nvidia-smi-query-pcie.csv"

TIMEFORMAT="wall: %R s"
echo "== doctor --distributed --expect cuda"
time { st doctor --distributed --expect cuda; echo "exit=$?"; }
time { st doctor --distributed --expect cuda --json > "$OUT/doctor-distributed.json"; echo "--json exit=$?"; }
"$PY" - "$OUT/doctor-distributed.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
c = report["collective"] or {}
print("summary:", report["summary"])
print("collective:", {k: c.get(k) for k in ("ran", "passed", "backend", "world_size", "nccl_version", "seconds")})
print("bandwidth null reason:", c.get("bandwidth_null_reason"))
gb_s = lambda v: "null" if v is None else f"{v:.2f} GB/s"
for b in c.get("bandwidth") or []:
    print(f"  {b['bytes']:>11} B  {b['seconds'] * 1e6:9.1f} us  algbw {gb_s(b['algbw_gb_s']):>14}  busbw {gb_s(b['busbw_gb_s']):>14}")
print("expected busbw:", c.get("expected_busbw_gb_s"), c.get("expected_basis"))
print("topology:", json.dumps(c.get("topology")))
print("peer access:", (report.get("probe") or {}).get("torch", {}).get("peer_access"))
PY

LAST=$((GPUS > 1 ? GPUS - 1 : 0))
echo "== fault: rank $LAST killed (SIGKILL) at the start of the all-reduce"
time { SETUP_TOOL_TEST_DISTRIBUTED_FAULT="$LAST:die:all_reduce" st doctor --distributed --expect cuda \
  --json > "$OUT/doctor-rank-killed.json"; echo "exit=$? (8 expected)"; }
echo "== fault: rank $LAST hangs in the all-reduce (--distributed-timeout 20, --timeout 45)"
time { SETUP_TOOL_TEST_DISTRIBUTED_FAULT="$LAST:hang:all_reduce" st doctor --distributed --expect cuda \
  --distributed-timeout 20 --timeout 45 --json > "$OUT/doctor-rank-hangs.json"; echo "exit=$? (8 expected)"; }
"$PY" - "$OUT" <<'PY'
import json, sys
for name in ("doctor-rank-killed", "doctor-rank-hangs"):
    report = json.load(open(f"{sys.argv[1]}/{name}.json"))
    print(f"{name}: exit {report['exit_code']}: {report['summary']}")
    for check in report["checks"]:
        if check["id"].startswith(("collective", "pitfall.collective")):
            print(f"  {check['status']:4} {check['id']}: {check['detail']}")
    for rank in (report["collective"] or {}).get("ranks", []):
        print("  rank", rank["rank"], rank["outcome"], rank["stage"], rank["exit_code"], (rank["error"] or "")[:160])
PY
echo "== leftover ranks (none expected):"; pgrep -af distributed_probe.py || echo "none"

tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
echo "== done: $OUT.tar.gz"
