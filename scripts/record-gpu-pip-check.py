#!/usr/bin/env python3
"""The wheel machine check on a machine with an NVIDIA GPU, without downloading anything.

Run from the repository root: ``python3 scripts/record-gpu-pip-check.py``. It reads this
machine's driver with ``setup-tool detect`` and checks the pip part of three locks (wheel names
only, no files): PyTorch's CUDA 13.0 and 12.6 wheel sets and a CPU one. Prints one JSON line per
lock: fits, the CUDA mismatches and the warnings (``cuda_compat``'s rule). Needs ``packaging``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from setup_tool.detect import detect
from setup_tool.install.request import machine_facts
from setup_tool.install.wheelcompat import check_wheels
from setup_tool.install.wheels import LockedWheel, PythonTarget

PY = PythonTarget((3, 12), "cp312")
TAG = "cp312-cp312-manylinux_2_28_x86_64"
LOCKS = {
    "torch cu130": [
        ("torch", "2.9.0+cu130", TAG),
        ("nvidia-cuda-runtime", "13.0.96", "py3-none-manylinux_2_27_x86_64"),
    ],
    "torch cu126": [
        ("torch", "2.9.0+cu126", TAG),
        ("nvidia-cublas-cu12", "12.6.4.1", "py3-none-manylinux_2_27_x86_64"),
    ],
    "torch cpu": [("torch", "2.9.0+cpu", TAG)],
}


def wheel(name: str, version: str, tags: str) -> LockedWheel:
    filename = f"{name.replace('-', '_')}-{version}-{tags}.whl"
    return LockedWheel(
        name, version, f"https://download.pytorch.org/whl/{filename}", "0" * 64, "linux-64"
    )


facts = machine_facts(detect())
print("machine facts:", facts)
for label, entries in LOCKS.items():
    check = check_wheels([wheel(*e) for e in entries], PY, "linux-64", facts)
    print(
        json.dumps(
            {
                "lock": label,
                "fits": not check.problems,
                "problems": [p.reason for p in check.problems],
                "warnings": list(check.warnings),
            }
        )
    )
