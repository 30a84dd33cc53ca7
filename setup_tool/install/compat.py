"""Does a lock fit this machine? Checked before anything is downloaded.

A pure function of the locked packages and the machine's facts. What a lock needs is read
from the packages themselves, so this works on any conda-lock file:

- CUDA: a package that depends on ``__cuda`` (conda-forge's CUDA builds of PyTorch do), or a
  PyTorch whose build string says CUDA (older locks: the pytorch channel's
  ``py3.10_cuda11.8_cudnn8.7.0_0`` and conda-forge's ``cuda112py310h…`` builds depend on
  ``cudatoolkit`` / ``pytorch-cuda`` only), needs an NVIDIA driver whose CUDA is at least the
  locked ``cuda-version`` (or ``cudatoolkit`` / ``pytorch-cuda``), the build string's CUDA, and
  what its ``__cuda`` spec asks.
- ``__glibc`` and ``__osx`` specs in any package's dependencies, against the machine's glibc
  and macOS (``CONDA_OVERRIDE_GLIBC`` / ``CONDA_OVERRIDE_OSX`` honoured as conda does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from setup_tool.install.lockread import LockedPlatform
from setup_tool.variants import min_driver_for


@dataclass(frozen=True)
class MachineFacts:
    """What the check needs to know about this machine (from ``detect``)."""

    driver_cuda: str | None  # newest CUDA the driver supports; CONDA_OVERRIDE_CUDA applied
    driver_version: str | None = None
    glibc: str | None = None
    macos: str | None = None


@dataclass(frozen=True)
class Mismatch:
    """One reason the lock cannot run here, and how to fix it."""

    reason: str
    fix: str


_LOWER_BOUND = re.compile(r">=\s*([0-9][0-9a-zA-Z.]*)")

# Packages whose version is the CUDA version a lock was solved for: conda-forge's
# `cuda-version`, the `cudatoolkit` of older locks, the pytorch channel's `pytorch-cuda`.
CUDA_VERSION_PACKAGES = ("cuda-version", "cudatoolkit", "pytorch-cuda")
# PyTorch packages and how their CUDA builds spell the CUDA version in the build string:
# conda-forge `cuda129_mkl_py312_h…_302` / `cuda112py310h…_200` (pytorch-cpu-feedstock), the
# pytorch channel `py3.10_cuda11.8_cudnn8.7.0_0`. Such builds need a driver even when the lock
# (written by an older conda-lock, or from the pytorch channel) has no `__cuda` dependency.
TORCH_PACKAGES = ("pytorch", "libtorch")
_CUDA_BUILD = re.compile(r"(?:^|_)cuda(\d+)(?:\.(\d+))?")


def _build_cuda(build: str) -> str | None:
    """``cuda129_mkl…`` → 12.9, ``cuda112py310…`` → 11.2, ``py3.10_cuda11.8_cudnn…`` → 11.8."""
    match = _CUDA_BUILD.search(build)
    if match is None:
        return None
    digits, minor = match.groups()
    if minor is not None:
        return f"{int(digits)}.{int(minor)}"
    return f"{int(digits[:-1])}.{digits[-1]}" if len(digits) >= 3 else f"{int(digits)}.0"


def required_cuda(locked: LockedPlatform) -> tuple[str | None, str | None]:
    """(CUDA version the lock needs from the driver, the package that says so), or (None, None).

    Only locks with a package depending on ``__cuda``, or a PyTorch CUDA build, need a driver
    at all: a CPU build may still carry ``cuda-version`` through some other package without
    ever touching a GPU.
    """
    needing = [
        p
        for p in locked.packages
        if p.requirement("__cuda") is not None
        or (p.name in TORCH_PACKAGES and _build_cuda(p.build) is not None)
    ]
    if not needing:
        return None, None
    # (version, preference, version text, why): on a tie the package that pins the CUDA
    # runtime (cuda-version, cudatoolkit) is the better explanation than a __cuda spec or a
    # build string.
    candidates: list[tuple[Version, int, str, str]] = []
    by_name = locked.by_name()
    for name in CUDA_VERSION_PACKAGES:
        if name in by_name:
            version = _major_minor(by_name[name].version)
            if version is not None:
                candidates.append((Version(version), 1, version, f"{name} {by_name[name].version}"))
    for package in needing:
        if package.name in TORCH_PACKAGES and (version := _build_cuda(package.build)):
            candidates.append((Version(version), 0, version, f"{package.name} {package.build}"))
        match = _LOWER_BOUND.search(package.requirement("__cuda") or "")
        if match and (version := _major_minor(match.group(1))) is not None:
            candidates.append((Version(version), 0, version, f"{package.name} {package.build}"))
    if not candidates:
        return "0", needing[0].name  # needs some CUDA driver, any version
    _, _, version, why = max(candidates)
    return version, why


def check_machine(locked: LockedPlatform, machine: MachineFacts) -> list[Mismatch]:
    """Every reason this lock cannot be installed and run here (empty when it fits)."""
    problems = []
    cuda, why = required_cuda(locked)
    if cuda is not None:
        problems.extend(_check_cuda(cuda, why or "", machine))
    problems.extend(_check_minimum(locked, "__glibc", machine.glibc, "glibc"))
    problems.extend(_check_minimum(locked, "__osx", machine.macos, "macOS"))
    return problems


def _check_cuda(cuda: str, why: str, machine: MachineFacts) -> list[Mismatch]:
    wanted = "CUDA" if cuda == "0" else f"CUDA {cuda}"
    alternatives = "install the cpu variant instead (`setup-tool install --variant cpu`)" + (
        f", or set CONDA_OVERRIDE_CUDA={cuda} if you know the driver supports it"
        if cuda != "0"
        else ""
    )
    if machine.driver_cuda is None:
        return [
            Mismatch(
                f"the lock's PyTorch is a CUDA build ({why} needs {wanted}) but this machine "
                f"has no NVIDIA driver",
                f"install an NVIDIA driver, or {alternatives}",
            )
        ]
    if cuda != "0" and Version(machine.driver_cuda) < Version(cuda):
        driver = f"driver {machine.driver_version}" if machine.driver_version else "the driver"
        minimum = min_driver_for(cuda)
        update = (
            f"update the NVIDIA driver to {minimum} or newer"
            if minimum
            else "update the NVIDIA driver"
        )
        return [
            Mismatch(
                f"the lock needs CUDA {cuda} ({why}) but {driver} supports CUDA "
                f"{machine.driver_cuda}",
                f"{update}, or {alternatives}",
            )
        ]
    return []


def _check_minimum(
    locked: LockedPlatform, virtual: str, have: str | None, label: str
) -> list[Mismatch]:
    """Packages' specs on ``virtual`` (``__glibc >=2.28``) against this machine's value; the
    strictest one that fails is reported, so that fixing it fixes them all."""
    from rattler import Version as CondaVersion
    from rattler import VersionSpec

    failing: list[tuple[Version, str, str]] = []  # (lower bound, package, spec)
    for package in locked.packages:
        spec = package.requirement(virtual)
        if not spec or spec.strip() in {"*", ""}:
            continue
        if have is None:
            return [
                Mismatch(
                    f"{package.name} needs {label} {spec} and this machine's {label} is unknown",
                    f"set CONDA_OVERRIDE_{virtual.strip('_').upper()} to this machine's version",
                )
            ]
        try:
            fits = VersionSpec(spec).matches(CondaVersion(have))
        except Exception:  # an unparsable spec is the lock's problem, reported as such
            return [Mismatch(f"{package.name} has an unreadable {virtual} spec {spec!r}", "relock")]
        if not fits:
            match = _LOWER_BOUND.search(spec)
            bound = _major_minor(match.group(1)) if match else None
            failing.append((Version(bound or "0"), package.name, spec))
    if not failing:
        return []
    _, name, spec = max(failing, key=lambda failure: failure[0])
    return [
        Mismatch(
            f"{name} needs {label} {spec} but this machine has {label} {have}",
            f"use a machine or distribution with {label} {spec}, or relock for an older "
            f"{label} baseline",
        )
    ]


def _major_minor(version: str) -> str | None:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return f"{parsed.major}.{parsed.minor}"
