"""What setup-tool offers: the PyTorch variants, their platforms and the CUDA builds behind them.

Facts about conda-forge's PyTorch packaging live here as tables, each with its source, so that
detection, locking, installing and the doctor agree on them (``shared/design/FACTS.md``).
"""

from __future__ import annotations

from enum import Enum

from packaging.version import Version


class Variant(str, Enum):
    """A PyTorch build family: one lockfile, one accelerator."""

    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class VariantChoice(str, Enum):
    """What ``--variant`` accepts: a variant, or ``auto`` for detection."""

    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


VARIANT_NAMES: tuple[str, ...] = tuple(v.value for v in Variant)

# The conda subdirs each variant is locked for (ARCHITECTURE.md "Variants").
VARIANT_PLATFORMS: dict[Variant, tuple[str, ...]] = {
    Variant.cuda: ("linux-64", "linux-aarch64"),
    Variant.mps: ("osx-arm64",),
    Variant.cpu: ("linux-64", "linux-aarch64", "osx-arm64"),
}

# conda subdirs this project knows how to lock at all.
SUPPORTED_SUBDIRS: tuple[str, ...] = ("linux-64", "linux-aarch64", "osx-arm64")

# CUDA versions conda-forge builds PyTorch for on Linux, oldest first
# (pytorch-cpu-feedstock recipe/meta.yaml, 2026: cuda129 and cuda130 builds).
CONDA_FORGE_CUDA_BUILDS: tuple[str, ...] = ("12.9", "13.0")

# Lowest GPU compute capability each CUDA build's PyTorch ships kernels for
# (FACTS.md: CUDA 13 builds cover sm_75 and newer; CUDA 12.8/12.9 builds cover sm_50 to sm_120).
CUDA_BUILD_MIN_COMPUTE_CAPABILITY: dict[str, Version] = {
    "12.9": Version("5.0"),
    "13.0": Version("7.5"),
}

# Minimum Linux driver for each CUDA toolkit release: the toolkit release notes' table
# ("CUDA Toolkit and Corresponding Driver Versions"), the same figures uv and
# light-the-torch use. Used to infer the driver's CUDA when only its version is known
# (no NVML, no nvidia-smi), and to tell users which driver to install.
CUDA_MIN_LINUX_DRIVER: tuple[tuple[str, str], ...] = (
    ("11.4", "470.42.01"),
    ("11.8", "520.61.05"),
    ("12.0", "525.60.13"),
    ("12.1", "530.30.02"),
    ("12.2", "535.54.03"),
    ("12.3", "545.23.06"),
    ("12.4", "550.54.14"),
    ("12.5", "555.42.02"),
    ("12.6", "560.28.03"),
    ("12.8", "570.26"),
    ("12.9", "575.51.03"),
    ("13.0", "580.65.06"),
)

# macOS PyTorch needs for MPS: 2.10 and later require macOS 14 (pytorch#177819); conda-forge's
# osx-arm64 deployment target is 12.0, which is what the solver needs to see at least.
MPS_MIN_MACOS = "14.0"
OSX_ARM64_DEPLOYMENT_TARGET = "12.0"


def cuda_from_driver(driver_version: str) -> str | None:
    """The newest CUDA version a Linux driver supports, from the toolkit table, or None."""
    try:
        driver = Version(driver_version)
    except ValueError:
        return None
    best = None
    for cuda, minimum in CUDA_MIN_LINUX_DRIVER:
        if driver >= Version(minimum):
            best = cuda
    return best


def min_driver_for(cuda: str) -> str | None:
    """The minimum Linux driver for a CUDA version (its major.minor), or None if unknown."""
    for known, minimum in CUDA_MIN_LINUX_DRIVER:
        if known == cuda:
            return minimum
    return None
