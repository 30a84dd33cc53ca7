"""Does a lock fit this machine? Checked before anything is downloaded.

A pure function of the locked packages and the machine's facts. What a lock needs is read
from the packages themselves, so this works on any conda-lock file:

- CUDA: a package that depends on ``__cuda`` (conda-forge's CUDA builds of PyTorch do) needs an
  NVIDIA driver whose CUDA is at least the locked ``cuda-version`` (or ``cudatoolkit`` for older
  locks), and at least what its ``__cuda`` spec asks.
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


def required_cuda(locked: LockedPlatform) -> tuple[str | None, str | None]:
    """(CUDA version the lock needs from the driver, the package that says so), or (None, None).

    Only locks with a package depending on ``__cuda`` need a driver at all: a CPU build may
    still carry ``cuda-version`` through some other package without ever touching a GPU.
    """
    needing = [p for p in locked.packages if p.requirement("__cuda") is not None]
    if not needing:
        return None, None
    # (version, preference, version text, why): on a tie the package that pins the CUDA
    # runtime (cuda-version, cudatoolkit) is the better explanation than a __cuda spec.
    candidates: list[tuple[Version, int, str, str]] = []
    by_name = locked.by_name()
    for name in ("cuda-version", "cudatoolkit"):
        if name in by_name:
            version = _major_minor(by_name[name].version)
            if version is not None:
                candidates.append((Version(version), 1, version, f"{name} {by_name[name].version}"))
    for package in needing:
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
    """Each package's spec on ``virtual`` (``__glibc >=2.28``) against this machine's value."""
    from rattler import Version as CondaVersion
    from rattler import VersionSpec

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
            return [
                Mismatch(
                    f"{package.name} needs {label} {spec} but this machine has {label} {have}",
                    f"use a machine or distribution with {label} {spec}, or relock for an older "
                    f"{label} baseline",
                )
            ]
    return []


def _major_minor(version: str) -> str | None:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return f"{parsed.major}.{parsed.minor}"
