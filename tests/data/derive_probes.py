"""Write the ``probe-derived-*.json`` files from the real probe recorded on the CPU machine.

No GPU with a too-old driver, no Mac and no broken torchvision exist where setup-tool is
developed, so each pitfall's probe is the real CPU recording with only the fields that pitfall
changes edited (the edits below, one function per file). Messages are the ones torch and
torchvision print for that failure. Re-run after re-recording the base file:

    python tests/data/derive_probes.py
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BASE = HERE / "probe-linux-x86_64-cu130-no-gpu.json"

Probe = dict[str, Any]

DRIVER_580 = {"version": "580.95.05", "cuda": "13.0", "error": None}


def _cuda_gpu(probe: Probe, name: str, capability: str, memory_mib: int) -> None:
    """Make the probe see one GPU: the CPU placement entry, re-labelled, stands in for it."""
    torch = probe["torch"]
    torch.update(cuda_available=True, cuda_device_count=1, cuda_error=None)
    probe["devices"] = [
        {
            "index": 0,
            "name": name,
            "capability": capability,
            "memory_mib": memory_mib,
            "multiprocessors": 56,
        }
    ]
    entry = copy.deepcopy(probe["placement"][0])
    entry.update(device="cuda:0", moved_to="cuda:0")
    probe["placement"].append(entry)
    probe["torchvision"]["nms"]["cuda:0"] = {"ok": True, "error": None}


def cpu_only_torch(probe: Probe) -> None:
    """The PyPI CPU wheel (torch 2.14.1+cpu) on a machine with an NVIDIA driver 580."""
    probe["nvidia_driver"] = dict(DRIVER_580)
    probe["torch"].update(
        version="2.14.1+cpu",
        cuda=None,
        cudnn=None,
        arch_list=[],
        cuda_error="AssertionError: Torch not compiled with CUDA enabled",
    )
    probe["torchvision"].update(version="0.29.1+cpu", cuda=-1)


def driver_too_old(probe: Probe) -> None:
    """torch built for CUDA 13.0 on driver 535 (CUDA 12.2): torch's own message says so."""
    probe["nvidia_driver"] = {"version": "535.154.05", "cuda": "12.2", "error": None}
    probe["torch"]["cuda_error"] = (
        "RuntimeError: The NVIDIA driver on your system is too old (found version 12020). "
        "Please update your GPU driver by downloading and installing a new version from the "
        "URL: http://www.nvidia.com/Download/index.aspx Alternatively, go to: "
        "https://pytorch.org to install a PyTorch version that has been compiled with your "
        "version of the CUDA driver."
    )


def gpu_arch_missing(probe: Probe) -> None:
    """A Tesla P100 (sm_60) with torch's CUDA 13 build, whose kernels start at sm_75."""
    probe["nvidia_driver"] = dict(DRIVER_580)
    _cuda_gpu(probe, "Tesla P100-PCIE-16GB", "6.0", 16276)
    entry = probe["placement"][1]
    entry.update(
        stage="conv",
        conv=None,
        matmul=None,
        error="RuntimeError: CUDA error: no kernel image is available for execution on the "
        "device\nCUDA kernel errors might be asynchronously reported at some other API call, "
        "so the stacktrace below might be incorrect.",
    )
    probe["torch"]["warnings"] = [
        "Found GPU0 Tesla P100-PCIE-16GB which is of cuda capability 6.0.\n    Minimum and "
        "Maximum cuda capability supported by this version of PyTorch is (7.5) - (12.0)\n"
    ]
    probe["torchvision"]["nms"]["cuda:0"] = {
        "ok": False,
        "error": "RuntimeError: CUDA error: no kernel image is available for execution on the "
        "device",
    }


def cuda_visible_devices_empty(probe: Probe) -> None:
    """CUDA_VISIBLE_DEVICES='' on a machine with a driver and GPUs: torch sees none."""
    probe["nvidia_driver"] = dict(DRIVER_580)
    probe["environment"]["CUDA_VISIBLE_DEVICES"] = ""
    probe["torch"]["cuda_error"] = "RuntimeError: No CUDA GPUs are available"


def _mac(probe: Probe, machine: str, mac_ver: str, translated: bool) -> None:
    probe["python"].update(
        executable="/Users/me/miniforge3/envs/torch/bin/python",
        prefix="/Users/me/miniforge3/envs/torch",
        system="darwin",
        machine=machine,
        mac_ver=mac_ver,
        translated=translated,
    )
    probe["nvidia_driver"] = {"version": None, "cuda": None, "error": None}
    probe["environment"]["LD_LIBRARY_PATH"] = None
    probe["torch"].update(
        version="2.14.1",
        cuda=None,
        cudnn=None,
        arch_list=[],
        cuda_error="AssertionError: Torch not compiled with CUDA enabled",
        mps_built=True,
    )
    probe["torchvision"].update(version="0.29.1", cuda=-1)


def mac_mps(probe: Probe) -> None:
    """Apple Silicon, macOS 15.1, arm64 Python: MPS works (injected facts, no Mac here)."""
    _mac(probe, "arm64", "15.1", translated=False)
    probe["torch"].update(mps_available=True, mps_error=None)
    entry = copy.deepcopy(probe["placement"][0])
    entry.update(device="mps", moved_to="mps:0")
    probe["placement"].append(entry)
    probe["torchvision"]["nms"]["mps"] = {"ok": True, "error": None}


def mac_rosetta(probe: Probe) -> None:
    """An x86_64 Python under Rosetta 2 on Apple Silicon: torch sees macOS as 10.16, no MPS."""
    _mac(probe, "x86_64", "10.16", translated=True)
    probe["torch"].update(
        version="2.2.2",
        mps_available=False,
        mps_error="RuntimeError: The MPS backend is supported on MacOS 12.3+.Current OS version "
        "can be queried using `sw_vers`",
    )
    probe["torchvision"] = {
        "found": False,
        "version": None,
        "path": None,
        "ops_loaded": False,
        "ops_error": None,
        "cuda": None,
        "nms": {},
    }


def mac_old_macos(probe: Probe) -> None:
    """Apple Silicon on macOS 13.6: torch 2.14 has MPS built in but needs macOS 14."""
    _mac(probe, "arm64", "13.6", translated=False)
    probe["torch"].update(
        mps_available=False,
        mps_error="RuntimeError: The MPS backend is supported on MacOS 14.0+. Current OS "
        "version can be queried using `sw_vers`",
    )


def torchvision_mismatch(probe: Probe) -> None:
    """torchvision 0.20.1 (built for torch 2.5) beside torch 2.14: its ops do not load."""
    path = probe["torchvision"]["path"]
    probe["torchvision"].update(
        version="0.20.1",
        ops_loaded=False,
        ops_error=f"OSError: {path}/_C.so: undefined symbol: _ZN3c1017RegisterOperatorsD1Ev",
        cuda=None,
        nms={},
    )


def torchvision_missing(probe: Probe) -> None:
    """torch alone, as on a machine where only torch was pip-installed."""
    probe["torchvision"] = {
        "found": False,
        "version": None,
        "path": None,
        "ops_loaded": False,
        "ops_error": None,
        "cuda": None,
        "nms": {},
    }


def cpu_wrong_results(probe: Probe) -> None:
    """The CPU's matmul off by 5e-3 relative: what TF32-like rounding or a bad BLAS gives."""
    matmul = probe["placement"][0]["matmul"]
    matmul["max_abs_error"] = matmul["reference_max_abs"] * 5e-3


DERIVATIONS: dict[str, Callable[[Probe], None]] = {
    "linux-cpu-only-torch": cpu_only_torch,
    "linux-driver-too-old": driver_too_old,
    "linux-gpu-arch-missing": gpu_arch_missing,
    "linux-cuda-visible-devices-empty": cuda_visible_devices_empty,
    "linux-torchvision-mismatch": torchvision_mismatch,
    "linux-torchvision-missing": torchvision_missing,
    "linux-cpu-wrong-results": cpu_wrong_results,
    "mac-mps": mac_mps,
    "mac-rosetta": mac_rosetta,
    "mac-old-macos": mac_old_macos,
}


def main() -> None:
    base = json.loads(BASE.read_text())
    for name, derive in DERIVATIONS.items():
        probe = copy.deepcopy(base)
        derive(probe)
        probe["derived"] = f"from {BASE.name}: {derive.__doc__}"
        (HERE / f"probe-derived-{name}.json").write_text(json.dumps(probe, indent=2) + "\n")


if __name__ == "__main__":
    main()
