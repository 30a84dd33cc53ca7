"""What setup-tool offers: the PyTorch variants, their platforms and the CUDA builds behind them.

Facts about conda-forge's PyTorch packaging live here as tables, each with its public source,
so that detection, locking, installing and the doctor agree on them (``docs/facts.md`` collects
them). Whether a CUDA build runs on a driver is ``setup_tool.cuda_compat``'s one rule; its
driver tables are re-exported here for the modules that imported them from here.
"""

from __future__ import annotations

from enum import Enum

from packaging.version import Version

from setup_tool.cuda_compat import CUDA_MIN_LINUX_DRIVER, cuda_from_driver, min_driver_for

__all__ = [
    "CONDA_FORGE_CUDA_BUILDS",
    "CUDA_BUILD_MIN_COMPUTE_CAPABILITY",
    "CUDA_MIN_LINUX_DRIVER",
    "MPS_MIN_MACOS",
    "OSX_ARM64_DEPLOYMENT_TARGET",
    "SUPPORTED_SUBDIRS",
    "VARIANT_NAMES",
    "VARIANT_PLATFORMS",
    "Variant",
    "VariantChoice",
    "cuda_from_driver",
    "min_driver_for",
]


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

# The conda subdirs each variant is locked for: conda-forge builds CUDA PyTorch for linux-64 and
# linux-aarch64, and MPS only on osx-arm64 (conda-forge/pytorch-cpu-feedstock, recipe/meta.yaml).
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

# Lowest GPU compute capability each CUDA build's PyTorch ships kernels for: CUDA 13 builds
# cover sm_75 and newer, CUDA 12.8/12.9 builds sm_50 to sm_120 (the TORCH_CUDA_ARCH_LIST of
# conda-forge/pytorch-cpu-feedstock's recipe).
CUDA_BUILD_MIN_COMPUTE_CAPABILITY: dict[str, Version] = {
    "12.9": Version("5.0"),
    "13.0": Version("7.5"),
}

# macOS PyTorch needs for MPS: 2.10 and later require macOS 14 (pytorch#177819); conda-forge's
# osx-arm64 deployment target is 12.0, which is what the solver needs to see at least.
MPS_MIN_MACOS = "14.0"
OSX_ARM64_DEPLOYMENT_TARGET = "12.0"
