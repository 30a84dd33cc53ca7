"""Machines as ``Platform`` values, built directly (no probing): one per case detect must get right.

Values follow real machines: the H200 ones from the device machine's own output
(tests/data/README.md), the others from vendor documentation of those products.
"""

from __future__ import annotations

from setup_tool.detect import Gpu, Nvidia, Platform

H200 = Gpu(0, "NVIDIA H200", 143771, "9.0")
NVML = {"nvidia.driver_version": "nvml", "nvidia.cuda_version": "nvml", "nvidia.gpus": "nvml"}


def linux(**overrides: object) -> Platform:
    base: dict[str, object] = {
        "os": "linux",
        "machine": "x86_64",
        "python_version": "3.12.3",
        "python_machine": "x86_64",
        "glibc_version": "2.35",
        "kernel": "6.8.0-45-generic",
        "distribution": "Ubuntu 22.04.4 LTS",
        "cpu_count": 16,
    }
    base.update(overrides)
    return Platform(**base)  # type: ignore[arg-type]


def mac(**overrides: object) -> Platform:
    base: dict[str, object] = {
        "os": "darwin",
        "machine": "arm64",
        "python_version": "3.12.3",
        "python_machine": "arm64",
        "macos_version": "15.1",
        "apple_silicon": True,
        "rosetta": False,
        "cpu_model": "Apple M1",
    }
    base.update(overrides)
    return Platform(**base)  # type: ignore[arg-type]


MAC_ARM64 = mac()
MAC_ROSETTA = mac(python_machine="x86_64", rosetta=True)
MAC_INTEL = mac(
    machine="x86_64", python_machine="x86_64", apple_silicon=False, macos_version="13.6"
)
MAC_OLD_MACOS = mac(macos_version="13.6")
LINUX_CUDA13 = linux(
    nvidia=Nvidia("580.159.03", "13.0", (H200,)), sources=NVML, glibc_version="2.39"
)
LINUX_CUDA12_9 = linux(
    nvidia=Nvidia("575.57.08", "12.9", (Gpu(0, "NVIDIA GeForce RTX 4090", 24564, "8.9"),)),
    sources=NVML,
)
LINUX_DRIVER_470 = linux(
    nvidia=Nvidia("470.82.01", "11.4", (Gpu(0, "Tesla T4", 15109, "7.5"),)), sources=NVML
)
LINUX_CUDA13_PASCAL = linux(
    nvidia=Nvidia("580.65.06", "13.0", (Gpu(0, "Tesla P100-PCIE-16GB", 16280, "6.0"),)),
    sources=NVML,
)
LINUX_TWO_GPUS = linux(
    nvidia=Nvidia(
        "580.65.06",
        "13.0",
        (
            Gpu(0, "NVIDIA A100-SXM4-80GB", 81920, "8.0"),
            Gpu(1, "NVIDIA A100-SXM4-80GB", 81920, "8.0"),
        ),
    ),
    sources=NVML,
)
CPU_ONLY = linux(unknown={"nvidia": "no NVIDIA driver found"})
LINUX_AARCH64_GH200 = linux(
    machine="aarch64",
    python_machine="aarch64",
    nvidia=Nvidia("580.65.06", "13.0", (Gpu(0, "NVIDIA GH200 480GB", 97871, "9.0"),)),
    sources=NVML,
)
LINUX_AARCH64_CPU = linux(machine="aarch64", python_machine="aarch64")
WIN64 = Platform(os="windows", machine="amd64", python_machine="amd64")
LINUX_PPC64LE = linux(machine="ppc64le", python_machine="ppc64le")
