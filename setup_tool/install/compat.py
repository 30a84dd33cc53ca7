"""Does a lock fit this machine? Checked before anything is downloaded.

A pure function of the locked packages and the machine's facts, reading what a lock needs from
its own packages, so it works on any conda-lock or explicit lockfile:

- **CUDA.** A package is a CUDA build when it depends on ``__cuda`` (conda-forge's CUDA builds
  of pytorch, jaxlib, tensorflow, xgboost ... do) or when its build string says CUDA (locks
  whose packages carry no ``__cuda``: the pytorch channel's ``py3.10_cuda11.8_cudnn8.7.0_0``,
  conda-forge's older ``cuda112py310h…`` and explicit lockfiles, which record no dependencies
  at all). Those need an NVIDIA driver. The CUDA the lock was built for is its locked
  ``cuda-version`` (or ``cudatoolkit`` / ``pytorch-cuda``, or the build string's CUDA), taken
  as a **major lower bound**, as conda-forge's ``cuda-version`` recipe constrains it
  (``__cuda >=X``); ``setup_tool.cuda_compat`` gives the verdict, and an older driver minor is
  a warning. Each package's own ``__cuda`` spec is matched against the driver's CUDA the way
  the solver matches it (py-rattler's ``VersionSpec``).
- **glibc and macOS.** ``__glibc`` / ``__osx`` specs in any package's dependencies, against
  the machine's glibc and macOS (``CONDA_OVERRIDE_GLIBC`` / ``CONDA_OVERRIDE_OSX`` honoured as
  conda does).
- **Wheels** (the lock's ``manager: pip`` entries): their tags against the environment's
  Python and this machine, and their CUDA against the driver (``wheelcompat.py``).

Every reason is reported, ordered: platform, CUDA/driver, glibc, macOS, anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from setup_tool import cuda_compat
from setup_tool.cuda_compat import CudaFit
from setup_tool.install.lockread import LockedPackage, LockedPlatform


@dataclass(frozen=True)
class MachineFacts:
    """What the check needs to know about this machine (from ``detect``)."""

    driver_cuda: str | None  # newest CUDA the driver supports; CONDA_OVERRIDE_CUDA applied
    driver_version: str | None = None
    glibc: str | None = None
    macos: str | None = None


# The order reasons are reported in: what to fix first comes first.
KINDS = ("platform", "cuda", "glibc", "macos", "other")


@dataclass(frozen=True)
class Mismatch:
    """One reason the lock cannot run here, and how to fix it."""

    reason: str
    fix: str
    kind: str = "other"  # one of KINDS

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.reason, "fix": self.fix}


@dataclass(frozen=True)
class CudaNeed:
    """What a lock's CUDA packages need: which packages, and the CUDA they were built for."""

    packages: tuple[str, ...]  # the CUDA builds, by name
    build: str | None  # "12.9": the CUDA the lock was built for; None when nothing says
    source: str  # what says so: "cuda-version 12.9", "pytorch py3.12_cuda12.4_cudnn9.1.0_0"
    specs: tuple[tuple[str, str], ...] = ()  # (package, __cuda spec) for versioned specs


@dataclass(frozen=True)
class MachineCheck:
    """The verdict: every mismatch (ordered by ``KINDS``), and warnings for a lock that fits."""

    mismatches: tuple[Mismatch, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    cuda: CudaFit | None = None  # the CUDA verdict, when the lock needs CUDA

    @property
    def fits(self) -> bool:
        return not self.mismatches


def ordered(mismatches: list[Mismatch]) -> tuple[Mismatch, ...]:
    """Mismatches in report order (platform, cuda, glibc, macos, other), stable within a kind."""
    rank = {kind: index for index, kind in enumerate(KINDS)}
    return tuple(sorted(mismatches, key=lambda m: rank.get(m.kind, len(KINDS))))


# Packages whose version is the CUDA a lock was solved for: conda-forge's `cuda-version`, the
# `cudatoolkit` of older locks, the pytorch channel's `pytorch-cuda`. conda-forge's
# cuda-version X.Y constrains `__cuda >=X` (cuda-version-feedstock, recipe/meta.yaml: "major
# version is lower bound"); cudatoolkit's recipe does the same (cudatoolkit-feedstock).
CUDA_VERSION_PACKAGES = ("cuda-version", "cudatoolkit", "pytorch-cuda")
# How CUDA builds spell their CUDA in the build string: conda-forge `cuda129_mkl_py312_h…_302`
# and `cuda112py310h…_200` (pytorch-cpu-feedstock, jaxlib-feedstock, tensorflow-feedstock), the
# pytorch channel `py3.10_cuda11.8_cudnn8.7.0_0` and `py312_cu124` (torchvision, torchaudio).
_CUDA_BUILD = re.compile(r"(?:^|_)cuda(\d+)(?:\.(\d+))?|(?:^|_)cu(\d{3,})(?=_|$)")


def build_cuda(build: str) -> str | None:
    """``cuda129_mkl…`` → 12.9, ``cuda112py310…`` → 11.2, ``py3.10_cuda11.8_cudnn…`` → 11.8,
    ``py312_cu124`` → 12.4; None for a build string that names no CUDA."""
    match = _CUDA_BUILD.search(build)
    if match is None:
        return None
    digits, minor, short = match.groups()
    if minor is not None:
        return f"{int(digits)}.{int(minor)}"
    digits = digits or short
    return f"{int(digits[:-1])}.{digits[-1]}" if len(digits) >= 3 else f"{int(digits)}.0"


def cuda_need(locked: LockedPlatform) -> CudaNeed | None:
    """What the lock's CUDA builds need, or None when the lock has none (a CPU lock, even one
    that carries ``cuda-version`` or ``cudatoolkit`` through a package that runs on the CPU)."""
    cuda_builds = [p for p in locked.packages if _is_cuda_build(p)]
    if not cuda_builds:
        return None
    by_name = locked.by_name()
    # On a tie, the package that pins the CUDA runtime is the clearer explanation.
    candidates: list[tuple[tuple[int, int], int, str, str]] = []
    for name in CUDA_VERSION_PACKAGES:
        package = by_name.get(name)
        if package is not None and (parsed := cuda_compat.parse_cuda(package.version)):
            candidates.append((parsed, 1, f"{parsed[0]}.{parsed[1]}", f"{name} {package.version}"))
    for package in cuda_builds:
        version = build_cuda(package.build)
        if version is not None and (parsed := cuda_compat.parse_cuda(version)):
            candidates.append((parsed, 0, version, f"{package.name} {package.build}"))
    specs = tuple(
        (p.name, spec)
        for p in cuda_builds
        if (spec := (p.requirement("__cuda") or "").strip()) not in {"", "*"}
    )
    names = tuple(sorted({p.name for p in cuda_builds}))
    if not candidates:
        return CudaNeed(names, None, "", specs)
    _, _, version, source = max(candidates)
    return CudaNeed(names, version, source, specs)


def _is_cuda_build(package: LockedPackage) -> bool:
    if package.requirement("__cuda") is not None:
        return True
    if package.name in CUDA_VERSION_PACKAGES:
        return False  # the runtime's version pin, not a build that needs a GPU
    return build_cuda(package.build) is not None


def assess(locked: LockedPlatform, machine: MachineFacts) -> MachineCheck:
    """Every reason this lock cannot be installed and run here, and warnings when it can."""
    mismatches: list[Mismatch] = []
    warnings: list[str] = []
    fit = None
    need = cuda_need(locked)
    if need is not None:
        fit, cuda_mismatches = _check_cuda(need, machine)
        mismatches.extend(cuda_mismatches)
        if fit is not None and fit.fits and fit.warning:
            warnings.append(f"{_packages(need.packages)}: {fit.warning}")
    mismatches.extend(_check_minimum(locked, "__glibc", machine.glibc, "glibc"))
    mismatches.extend(_check_minimum(locked, "__osx", machine.macos, "macOS"))
    if locked.wheels:  # the `manager: pip` entries: tags, glibc, macOS, CUDA (wheelcompat.py)
        from setup_tool.install.wheelcompat import check_wheels

        wheels = check_wheels(locked.wheels, locked.python, locked.platform, machine)
        mismatches.extend(wheels.problems)
        warnings.extend(wheels.warnings)
    if not locked.has_dependencies:
        warnings.append(
            f"{locked.path.name} records no dependencies (an explicit lockfile), so its glibc "
            f"and macOS requirements cannot be checked before installing; CUDA builds are "
            f"recognised by their build strings"
        )
    return MachineCheck(ordered(mismatches), tuple(warnings), fit)


def check_machine(locked: LockedPlatform, machine: MachineFacts) -> list[Mismatch]:
    """Every reason this lock cannot be installed and run here (empty when it fits)."""
    return list(assess(locked, machine).mismatches)


NAMED_PACKAGES = 8  # how many package names a message lists before counting the rest


def _packages(names: tuple[str, ...]) -> str:
    """``pytorch`` / ``jaxlib and tensorflow`` / ``a, b, ... and 4 other packages``."""
    if len(names) == 1:
        return names[0]
    if len(names) > NAMED_PACKAGES:
        shown = ", ".join(names[:NAMED_PACKAGES])
        return f"{shown} and {len(names) - NAMED_PACKAGES} other packages"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _check_cuda(need: CudaNeed, machine: MachineFacts) -> tuple[CudaFit | None, list[Mismatch]]:
    """The driver against the CUDA the lock was built for (``cuda_compat``'s rule, the major
    as the lower bound) and against each package's own ``__cuda`` spec."""
    builds = _packages(need.packages)
    are = "is a CUDA build" if len(need.packages) == 1 else "are CUDA builds"
    built_for = f" for CUDA {need.build} ({need.source})" if need.build else ""
    # Without a CUDA version in the lock, any driver will do (as far as the lock says).
    fit = None
    if need.build is not None:
        fit = cuda_compat.check(
            need.build, machine.driver_cuda, driver_version=machine.driver_version
        )
    major = f"CUDA {need.build.split('.')[0]}" if need.build else "CUDA"
    minimum = fit.minimum_driver if fit is not None and not fit.fits else None
    if machine.driver_cuda is None:
        if machine.driver_version:  # a driver is there; only its CUDA version is unknown
            return fit, [
                Mismatch(
                    f"{builds} {are}{built_for} and the CUDA version of NVIDIA driver "
                    f"{machine.driver_version} is unknown",
                    f"check the driver with `nvidia-smi`; if it supports {major}, set "
                    f"CONDA_OVERRIDE_CUDA to the CUDA version it reports",
                    "cuda",
                )
            ]
        driver_needed = f"driver {minimum} or newer ({major})" if minimum else "driver"
        return fit, [
            Mismatch(
                f"{builds} {are}{built_for} and this machine has no NVIDIA driver",
                f"install it on a machine with an NVIDIA GPU and {driver_needed}",
                "cuda",
            )
        ]
    mismatches = []
    if fit is not None and not fit.fits:
        driver = f"driver {machine.driver_version}" if machine.driver_version else "the driver"
        mismatches.append(
            Mismatch(
                f"{builds} {are}{built_for}, which need a driver for {major} or newer"
                + (f" (>= {minimum})" if minimum else "")
                + f"; {driver} supports CUDA {machine.driver_cuda}",
                f"update the NVIDIA driver to {minimum} or newer"
                if minimum
                else f"update the NVIDIA driver to one for {major}",
                "cuda",
            )
        )
    mismatches.extend(_check_cuda_specs(need, machine.driver_cuda))
    return fit, mismatches


def _check_cuda_specs(need: CudaNeed, driver_cuda: str) -> list[Mismatch]:
    """Each package's own versioned ``__cuda`` spec, matched as the solver matches it."""
    from rattler import Version as CondaVersion
    from rattler import VersionSpec

    mismatches = []
    for name, spec in need.specs:
        try:
            fits = VersionSpec(spec).matches(CondaVersion(driver_cuda))
        except Exception:  # an unparsable spec is the lock's problem, reported as such
            mismatches.append(
                Mismatch(f"{name} has an unreadable __cuda spec {spec!r}", "relock", "other")
            )
            continue
        if not fits:
            bound = _LOWER_BOUND.search(spec)
            driver = cuda_compat.min_driver_for(bound.group(1)) if bound else None
            mismatches.append(
                Mismatch(
                    f"{name} depends on __cuda {spec} and the driver supports CUDA "
                    f"{driver_cuda} (conda's solver refuses it too)",
                    f"update the NVIDIA driver to {driver} or newer"
                    if driver
                    else f"update the NVIDIA driver to one that supports CUDA {spec}",
                    "cuda",
                )
            )
    return mismatches


_LOWER_BOUND = re.compile(r">=\s*([0-9][0-9a-zA-Z.]*)")


def _check_minimum(
    locked: LockedPlatform, virtual: str, have: str | None, label: str
) -> list[Mismatch]:
    """Packages' specs on ``virtual`` (``__glibc >=2.28``) against this machine's value; the
    strictest failing spec is reported with the packages that need it, so that fixing it
    fixes them all."""
    from rattler import Version as CondaVersion
    from rattler import VersionSpec

    kind = label.lower()
    failing: dict[str, list[str]] = {}  # spec → packages
    for package in locked.packages:
        spec = (package.requirement(virtual) or "").strip()
        if spec in {"*", ""}:
            continue
        if have is None:
            return [
                Mismatch(
                    f"{package.name} needs {label} {spec} and this machine's {label} is unknown",
                    f"set CONDA_OVERRIDE_{virtual.strip('_').upper()} to this machine's version",
                    kind,
                )
            ]
        try:
            fits = VersionSpec(spec).matches(CondaVersion(have))
        except Exception:
            return [
                Mismatch(
                    f"{package.name} has an unreadable {virtual} spec {spec!r}", "relock", "other"
                )
            ]
        if not fits:
            failing.setdefault(spec, []).append(package.name)
    if not failing:
        return []
    spec = max(failing, key=_spec_bound)
    names = sorted(failing[spec])
    who = _packages(tuple(names))
    return [
        Mismatch(
            f"{who} {'needs' if len(names) == 1 else 'need'} {label} {spec} but this machine "
            f"has {label} {have}",
            f"use a machine or distribution with {label} {spec}, or relock for an older "
            f"{label} baseline",
            kind,
        )
    ]


def _spec_bound(spec: str) -> tuple[int, ...]:
    match = _LOWER_BOUND.search(spec)
    if match is None:
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", match.group(1))[:3])
