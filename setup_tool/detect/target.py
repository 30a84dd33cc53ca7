"""Choosing the PyTorch target for a machine: a pure function of its facts and the overrides.

``select_target(platform, overrides)`` never probes anything, so tests build a ``Platform`` and
check the decision. Every decision carries its source: the variant comes from ``--variant``,
then ``SETUP_TOOL_VARIANT``, then detection; the driver's CUDA from ``CONDA_OVERRIDE_CUDA``
(honoured as conda does: an empty value means no CUDA), then the driver itself.

Which CUDA build a driver runs is ``setup_tool.cuda_compat``'s rule (minor-version
compatibility: a CUDA X.y build runs on a driver for CUDA X or newer); the build chosen is the
newest conda-forge build that rule admits and every GPU has kernels in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from setup_tool import cuda_compat, virtual_packages
from setup_tool.cuda_compat import CudaFit
from setup_tool.detect.facts import Platform
from setup_tool.errors import UsageError
from setup_tool.variants import (
    CONDA_FORGE_CUDA_BUILDS,
    CUDA_BUILD_MIN_COMPUTE_CAPABILITY,
    MPS_MIN_MACOS,
    VARIANT_NAMES,
    VARIANT_PLATFORMS,
    Variant,
    VariantChoice,
)
from setup_tool.virtual_packages import VirtualPackage

VARIANT_ENV = "SETUP_TOOL_VARIANT"
CUDA_OVERRIDE_ENV = "CONDA_OVERRIDE_CUDA"
DETECTED = "detected"

_CUDA_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")


@dataclass(frozen=True)
class Overrides:
    """What the user forced. ``cuda`` is ``""`` for "no CUDA", None when not overridden."""

    variant: Variant | None = None
    variant_source: str = DETECTED
    cuda: str | None = None


def overrides_from(
    flag: VariantChoice | None, environ: Mapping[str, str], *, flag_name: str = "--variant"
) -> Overrides:
    """Resolve ``--variant`` > ``SETUP_TOOL_VARIANT`` > detection, and read CONDA_OVERRIDE_CUDA.

    Raises ``UsageError`` (one line, with the valid choices) for values that make no sense.
    """
    variant: Variant | None = None
    source = DETECTED
    if flag is not None and flag is not VariantChoice.auto:
        variant, source = Variant(flag.value), flag_name
    elif flag is None and environ.get(VARIANT_ENV, "").strip():
        value = environ[VARIANT_ENV].strip().lower()
        if value != VariantChoice.auto.value:
            if value not in VARIANT_NAMES:
                choices = ", ".join(c.value for c in VariantChoice)
                raise UsageError(
                    f"{VARIANT_ENV}={environ[VARIANT_ENV]!r} is not a variant; choose one of: "
                    f"{choices}",
                    f"unset {VARIANT_ENV} to let detection choose",
                )
            variant, source = Variant(value), VARIANT_ENV
    cuda = environ.get(CUDA_OVERRIDE_ENV)
    if cuda is not None:
        cuda = cuda.strip()
        if cuda and not _CUDA_VERSION.match(cuda):
            raise UsageError(
                f"{CUDA_OVERRIDE_ENV}={cuda!r} is not a CUDA version (expected e.g. 12.9 or 13.0)",
                f"set it to the CUDA version your driver supports, to an empty value for no CUDA, "
                f"or unset it: `unset {CUDA_OVERRIDE_ENV}`",
            )
    return Overrides(variant=variant, variant_source=source, cuda=cuda)


@dataclass(frozen=True)
class Target:
    """The PyTorch build this machine should get, and why.

    ``variant`` is None when no variant supports the platform ("unsupported"). ``cuda_build``
    is the CUDA version of the PyTorch build to lock (cuda variant only); ``driver_cuda`` is
    what the solver's ``__cuda`` says about this machine.
    """

    variant: Variant | None
    variant_source: str
    reason: str
    subdir: str
    cuda_build: str | None = None
    driver_cuda: str | None = None
    cuda_source: str | None = None
    virtual_packages: tuple[VirtualPackage, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The compatibility verdict behind the CUDA decision: for the build chosen, or, when none
    # fits, for the oldest build (which names the driver to install).
    cuda_fit: CudaFit | None = None
    # The warnings about the CUDA build (also in ``warnings``): install leaves them out when
    # the lock's own machine check speaks for the build it holds.
    cuda_warnings: tuple[str, ...] = ()

    @property
    def supported(self) -> bool:
        return self.variant is not None

    @property
    def name(self) -> str:
        return self.variant.value if self.variant else "unsupported"

    def to_json(self) -> dict[str, Any]:
        """The ``target`` object of ``detect --json`` (schema in docs/detect.md)."""
        return {
            "variant": self.name,
            "variant_source": self.variant_source,
            "reason": self.reason,
            "subdir": self.subdir,
            "cuda": self._cuda_json(),
            "virtual_packages": [vp.to_json() for vp in self.virtual_packages],
            "lockfile": f"envs/locks/{self.variant.value}.conda-lock.yml" if self.variant else None,
            "warnings": list(self.warnings),
        }

    def _cuda_json(self) -> dict[str, Any] | None:
        """``target.cuda``: the build, the driver's CUDA and the compatibility rule applied."""
        if self.driver_cuda is None and self.cuda_build is None:
            return None
        fit = self.cuda_fit
        return {
            "build": self.cuda_build,
            "driver": self.driver_cuda,
            "source": self.cuda_source,
            "rule": fit.rule if fit else None,
            "rule_text": cuda_compat.RULE_TEXT,
            "fits": fit.fits if fit else None,
            "warning": fit.warning if fit else None,
            "minimum_driver": fit.minimum_driver if fit else None,
        }


@dataclass(frozen=True)
class _Choice:
    variant: Variant | None
    reason: str
    cuda_build: str | None = None
    cuda_fit: CudaFit | None = None


def select_target(platform: Platform, overrides: Overrides | None = None) -> Target:
    """The target for ``platform``: detection, then the user's overrides on top."""
    overrides = overrides or Overrides()
    warnings: list[str] = []
    driver_cuda, cuda_source = _driver_cuda(platform, overrides)

    detected = _detect_variant(platform, driver_cuda, cuda_source, warnings)
    variant, reason, cuda_build = detected.variant, detected.reason, detected.cuda_build
    cuda_fit = detected.cuda_fit
    source = DETECTED
    cuda_warnings: list[str] = []  # about the CUDA build (a lock's own check supersedes them)
    if overrides.variant is not None:
        variant, source = overrides.variant, overrides.variant_source
        detected_name = detected.variant.value if detected.variant else "unsupported"
        reason = f"forced by {source} (detection chose {detected_name}: {detected.reason})"
        if variant is not Variant.cuda:
            cuda_build = None
        else:
            cuda_warnings += _forced_cuda_warnings(driver_cuda, cuda_build, cuda_fit)
        if platform.subdir not in VARIANT_PLATFORMS[variant]:
            warnings.append(
                f"the {variant.value} variant is built for "
                f"{', '.join(VARIANT_PLATFORMS[variant])}, not this machine's {platform.subdir}: "
                f"it can be locked here but not installed"
            )
    if variant is Variant.cuda and cuda_fit is not None and cuda_fit.warning:
        cuda_warnings.append(cuda_fit.warning)
    if platform.rosetta:
        warnings.append(
            "this Python runs under Rosetta (x86_64 on Apple Silicon) and cannot use MPS; the "
            "environment gets a native arm64 Python. For a native shell: `arch -arm64 zsh`"
        )
    return Target(
        variant=variant,
        variant_source=source,
        reason=reason,
        subdir=platform.subdir,
        cuda_build=cuda_build,
        driver_cuda=driver_cuda,
        cuda_source=cuda_source,
        virtual_packages=_virtual_packages(platform, driver_cuda),
        warnings=(*cuda_warnings, *warnings),
        cuda_fit=cuda_fit if variant is Variant.cuda or driver_cuda else None,
        cuda_warnings=tuple(cuda_warnings),
    )


def _forced_cuda_warnings(
    driver_cuda: str | None, cuda_build: str | None, cuda_fit: CudaFit | None
) -> list[str]:
    """Why a cuda variant forced by the user will not run here, if it will not."""
    if driver_cuda is None:
        return [
            "no NVIDIA driver CUDA detected: the cuda variant can be locked here but will not "
            "run on this machine"
        ]
    if cuda_build is None and cuda_fit is not None:
        return [f"{cuda_fit.reason}: the cuda variant will not run on this machine"]
    return []


def _virtual_packages(platform: Platform, driver_cuda: str | None) -> tuple[VirtualPackage, ...]:
    if platform.subdir not in virtual_packages.BASELINE:
        return ()
    return virtual_packages.for_machine(
        platform.subdir,
        cuda=driver_cuda,
        glibc=platform.glibc_version,
        linux_kernel=platform.kernel,
        macos=platform.macos_version,
    )


def _driver_cuda(platform: Platform, overrides: Overrides) -> tuple[str | None, str | None]:
    """The newest CUDA the driver supports (``__cuda``) and where that came from."""
    if overrides.cuda is not None:
        return (overrides.cuda or None), CUDA_OVERRIDE_ENV
    if platform.nvidia is not None and platform.nvidia.cuda_version:
        return platform.nvidia.cuda_version, platform.sources.get("nvidia.cuda_version")
    return None, None


def _detect_variant(
    platform: Platform, driver_cuda: str | None, cuda_source: str | None, warnings: list[str]
) -> _Choice:
    subdir = platform.subdir
    if platform.os == "darwin":
        if subdir != "osx-arm64":
            return _Choice(
                None,
                f"{subdir} (Intel Mac) is not a platform setup-tool locks: PyTorch has no GPU "
                f"support there (conda-forge still builds CPU PyTorch for osx-64)",
            )
        if platform.macos_version and Version(platform.macos_version) < Version(MPS_MIN_MACOS):
            return _Choice(
                Variant.cpu,
                f"macOS {platform.macos_version} is older than {MPS_MIN_MACOS}, which current "
                f"PyTorch needs for MPS; upgrade macOS to use the Apple GPU",
            )
        return _Choice(Variant.mps, "Apple Silicon: the GPU through Metal (MPS)")

    if platform.os != "linux" or subdir not in VARIANT_PLATFORMS[Variant.cpu]:
        return _Choice(
            None,
            f"{subdir} is not a platform setup-tool locks (it supports "
            f"{', '.join(VARIANT_PLATFORMS[Variant.cpu])})",
        )

    if driver_cuda is None:
        if cuda_source == CUDA_OVERRIDE_ENV:
            return _Choice(Variant.cpu, f"{CUDA_OVERRIDE_ENV} is empty, which means no CUDA")
        if platform.nvidia is not None:
            why = platform.unknown.get("nvidia.cuda_version", "unknown")
            warnings.append(f"an NVIDIA driver is present but its CUDA version is unknown: {why}")
            return _Choice(Variant.cpu, "the NVIDIA driver's CUDA version is unknown")
        return _Choice(Variant.cpu, "no NVIDIA driver found")

    nvidia = platform.nvidia
    no_gpu = nvidia is not None and not nvidia.gpus and "nvidia.gpus" not in platform.unknown
    if cuda_source != CUDA_OVERRIDE_ENV and no_gpu:
        return _Choice(Variant.cpu, "an NVIDIA driver is loaded but it reports no GPU")

    return _cuda_choice(platform, driver_cuda, cuda_source)


def _cuda_choice(platform: Platform, driver_cuda: str, cuda_source: str | None) -> _Choice:
    """cuda with the newest build the driver runs and the GPUs have kernels in, else cpu."""
    build, fit = _newest_cuda_build(platform, driver_cuda, cuda_source)
    if build is not None:
        how = (
            " through CUDA minor-version compatibility"
            if fit.rule == cuda_compat.RULE_MINOR_COMPAT
            else ""
        )
        return _Choice(
            Variant.cuda,
            f"driver supports CUDA {driver_cuda} (from {cuda_source}); the newest conda-forge "
            f"PyTorch build it can run{how} is CUDA {build}",
            build,
            fit,
        )
    offered = " and ".join(CONDA_FORGE_CUDA_BUILDS)
    if fit.fits:  # the driver runs a build, but a GPU is older than every build's kernels
        return _Choice(
            Variant.cpu,
            f"GPU compute capability {_oldest_gpu_capability(platform)} is older than any "
            f"conda-forge CUDA build of PyTorch ({offered}) has kernels for",
            None,
            fit,
        )
    oldest = CONDA_FORGE_CUDA_BUILDS[0]
    install = "update the NVIDIA driver"
    if fit.minimum_driver:
        install += f" to {fit.minimum_driver} or newer"
    return _Choice(
        Variant.cpu,
        f"the driver supports CUDA {driver_cuda} (from {cuda_source}) but conda-forge builds "
        f"PyTorch for CUDA {offered}, which need a driver for CUDA {_major(oldest)} or newer: "
        f"{install} for CUDA {oldest}",
        None,
        fit,
    )


def _major(version: str) -> str:
    parsed = cuda_compat.parse_cuda(version)
    return str(parsed[0]) if parsed else version


def _newest_cuda_build(
    platform: Platform, driver_cuda: str, cuda_source: str | None
) -> tuple[str | None, CudaFit]:
    """The newest conda-forge CUDA build the driver runs (``cuda_compat``'s rule) and every
    known GPU has kernels in, with its verdict; else None and the oldest build's verdict."""
    # The driver's own version also counts, unless CONDA_OVERRIDE_CUDA replaced what it says.
    driver_version = None
    if cuda_source != CUDA_OVERRIDE_ENV and platform.nvidia is not None:
        driver_version = platform.nvidia.driver_version
    oldest_gpu = _oldest_gpu_capability(platform)
    fit = cuda_compat.check(CONDA_FORGE_CUDA_BUILDS[0], driver_cuda, driver_version=driver_version)
    for build in reversed(CONDA_FORGE_CUDA_BUILDS):
        candidate = cuda_compat.check(build, driver_cuda, driver_version=driver_version)
        if not candidate.fits:
            continue
        fit = candidate
        if oldest_gpu is not None and oldest_gpu < CUDA_BUILD_MIN_COMPUTE_CAPABILITY[build]:
            continue
        return build, candidate
    return None, fit


def _oldest_gpu_capability(platform: Platform) -> Version | None:
    if platform.nvidia is None:
        return None
    capabilities = [
        Version(g.compute_capability) for g in platform.nvidia.gpus if g.compute_capability
    ]
    return min(capabilities) if capabilities else None
