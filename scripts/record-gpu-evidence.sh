#!/usr/bin/env bash
# Record what setup-tool reads and prints on a machine with an NVIDIA GPU: the raw driver
# sources (for tests/data/), detect, the doctor's probe and report, and a benchmark run.
# Run from the repository root with a Python that has torch (default: python3):
#   OUT=gpu-evidence PYTHON=python3 scripts/record-gpu-evidence.sh
# Everything lands in $OUT; a summary is printed last. Nothing is installed or changed.
set -u
OUT=${OUT:-gpu-evidence}
PY=${PYTHON:-python3}
mkdir -p "$OUT/raw" "$OUT/results"
. "$(dirname "$0")/record-common.sh"
use_checkout "$OUT" 110

echo "== raw driver sources"
nvidia-smi > "$OUT/raw/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap,uuid \
  --format=csv,noheader,nounits > "$OUT/raw/nvidia-smi-query.csv" 2>&1
cat /proc/driver/nvidia/version > "$OUT/raw/proc-driver-nvidia-version.txt" 2>&1
cat /sys/module/nvidia/version > "$OUT/raw/sys-module-nvidia-version.txt" 2>&1
head -3 "$OUT/raw/nvidia-smi.txt" "$OUT/raw/nvidia-smi-query.csv" "$OUT/raw/proc-driver-nvidia-version.txt"

echo "== setup-tool detect"
st detect --sources; echo "detect exit=$?"
st detect --json > "$OUT/detect.json"; echo "detect --json exit=$?"
"$PY" - "$OUT" <<'PY'
# Median wall time of `detect --json`, and the nvidia-smi fallback read on real hardware.
import json, statistics, subprocess, sys, time
out = sys.argv[1]
times = []
for _ in range(7):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "setup_tool", "detect", "--json"], capture_output=True, check=True)
    times.append(time.perf_counter() - t)
print(f"detect --json wall: median {statistics.median(times):.3f} s over 7 ({min(times):.3f}-{max(times):.3f})")
from setup_tool.detect import nvidia
from setup_tool.runner import run_command
def no_nvml():
    raise ImportError("NVML disabled to exercise the fallbacks")
t = time.perf_counter()
reading = nvidia.read_nvidia(run_command, nvml_loader=no_nvml)
took = time.perf_counter() - t
data = {"nvidia": None if reading.nvidia is None else {
    "driver_version": reading.nvidia.driver_version, "cuda_version": reading.nvidia.cuda_version,
    "gpus": [g.__dict__ for g in reading.nvidia.gpus]}, "sources": reading.sources,
    "unknown": reading.unknown, "seconds": round(took, 3)}
json.dump(data, open(f"{out}/detect-fallback.json", "w"), indent=1)
print("fallback without NVML:", json.dumps(data))
PY

echo "== the CUDA compatibility rule on this driver (target.cuda of detect --json)"
"$PY" - "$OUT/detect.json" <<'PY'
import json, sys
cuda = json.load(open(sys.argv[1]))["target"]["cuda"]
print(json.dumps(cuda, indent=1))
PY
# The machine check of install on this driver, for a CUDA 12.9 lock (the 12.x build on a 13.0
# driver: "driver-cuda-at-least-build", no warning) without downloading anything.
"$PY" - <<'PY'
from pathlib import Path
from setup_tool.detect import detect
from setup_tool.install.compat import assess
from setup_tool.install.lockread import LockedPackage, LockedPlatform
from setup_tool.install.request import machine_facts
def pkg(name, version, build, **deps):
    return LockedPackage(name, version, build, f"https://x/linux-64/{name}-{version}-{build}.conda",
                         "0" * 64, "", "linux-64", tuple(sorted(deps.items())))
lock = LockedPlatform(Path("cuda129.conda-lock.yml"), "linux-64", (
    pkg("cuda-version", "12.9", "h4f385c5_3"),
    pkg("pytorch", "2.10.0", "cuda129_mkl_py312_h2ff76c1_300", __cuda="", __glibc=">=2.28,<3.0.a0"),
), ("linux-64",), None)
facts = machine_facts(detect())
print("machine facts:", facts)
try:
    check = assess(lock, facts)
except ImportError as exc:  # the glibc check uses py-rattler's VersionSpec
    raise SystemExit(f"machine check skipped: {exc}")
print("fits:", check.fits, "rule:", check.cuda.rule if check.cuda else None,
      "mismatches:", [m.reason for m in check.mismatches], "warnings:", list(check.warnings))
PY

echo "== setup-tool doctor"
"$PY" setup_tool/doctor/probe.py > "$OUT/probe-linux-h200.json" 2> "$OUT/raw/probe.stderr"
echo "probe exit=$?"
TIMEFORMAT="doctor wall: %R s"
time { st doctor --expect cuda; echo "doctor --expect cuda exit=$?"; }
st doctor; echo "doctor (auto) exit=$?"
st doctor --expect cuda --json > "$OUT/doctor.json"; echo "doctor --json exit=$?"
CUDA_VISIBLE_DEVICES= st doctor --expect cuda > "$OUT/raw/doctor-hidden-gpus.txt" 2>&1
echo "doctor with CUDA_VISIBLE_DEVICES='' exit=$?"; grep -i "visible" "$OUT/raw/doctor-hidden-gpus.txt" | head -3

if [ "${BENCH:-1}" = 1 ]; then
  echo "== setup-tool bench"
  st bench --python "$PY" --device cuda --loop all --epochs 1 --label h200 --results-dir "$OUT/results"
  echo "bench exit=$?"
  st report "$OUT/results" --out "$OUT/results"; echo "report exit=$?"
fi
tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
echo "== done: $OUT.tar.gz"
