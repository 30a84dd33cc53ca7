"""Do the lock's wheels fit this machine and the environment's Python? Checked before downloading.

A wheel's file name carries its compatibility tags (``python-abi-platform``, compressed sets
allowed). The tags this environment accepts are built with ``packaging.tags`` from:

- the environment's Python, read from the lock's conda ``python`` / ``python_abi`` packages
  (``wheels.python_target``), not from the interpreter running setup-tool;
- the lock's platform: its architecture, and this machine's glibc (manylinux) or macOS
  version (``CONDA_OVERRIDE_GLIBC`` / ``CONDA_OVERRIDE_OSX`` applied by the caller, as for
  conda packages).

A wheel fits when one of its tags is accepted. When none is, the reason is worked out per part
(Python/ABI, then platform: architecture, glibc, macOS) so the message names the real cause.
A pip entry that is not a wheel (an sdist, a ``git+https://`` checkout) never fits: it would
have to be built, and setup-tool builds nothing from source (an "other" reason).

CUDA wheels need a driver. Which wheels: NVIDIA's ``nvidia-<lib>-cu<major>`` (and the like:
``cupy-cuda12x``, ``jax-cuda12-plugin``), the CUDA runtime wheels whose version is the CUDA
version, and PyTorch's index builds with a ``+cu<XY>`` local version (``torch 2.9.0+cu126``).
They are checked with the same rule as conda packages: ``setup_tool.cuda_compat.check``
(a build for CUDA major M runs on a driver for M or newer; an older driver minor is a warning).

Mismatches carry ``compat.KINDS`` kinds, so they are reported in the same order as the conda
packages' (platform, CUDA, glibc, macOS, other).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from setup_tool import cuda_compat
from setup_tool.install.compat import MachineFacts, Mismatch
from setup_tool.install.wheels import LockedWheel, PythonTarget

# conda subdir → the architecture in wheel platform tags (PEP 425 / PEP 600 spell it as
# `platform.machine()` does on Linux; macOS wheels say arm64 / x86_64).
LINUX_ARCH = {
    "linux-64": "x86_64",
    "linux-32": "i686",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "linux-armv7l": "armv7l",
}
MACOS_ARCH = {"osx-64": "x86_64", "osx-arm64": "arm64"}
WINDOWS_PLATFORM = {"win-64": "win_amd64", "win-32": "win32", "win-arm64": "win_arm64"}

# The manylinux legacy names and the glibc each stands for: PEP 513 (manylinux1 = 2.5),
# PEP 571 (manylinux2010 = 2.12), PEP 599 (manylinux2014 = 2.17); PEP 600 keeps them as
# aliases of manylinux_2_5 / _2_12 / _2_17 (x86_64 and i686 only, except 2014).
LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
_LEGACY_ARCHES = {
    "manylinux1": {"x86_64", "i686"},
    "manylinux2010": {"x86_64", "i686"},
    "manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
}
# The oldest glibc with manylinux wheels per architecture (packaging's _manylinux.py: 2.5 for
# x86_64/i686, 2.17 for the architectures manylinux2014 introduced).
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5}
_DEFAULT_OLDEST_GLIBC_MINOR = 17

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_MACOSX = re.compile(r"^macosx_(\d+)_(\d+)_(.+)$")

# CUDA wheels. Names: nvidia-cublas-cu12, nvidia-cudnn-cu12 (NVIDIA's PyPI wheels, see
# https://pypi.org/user/nvidia/), cupy-cuda12x (https://pypi.org/project/cupy-cuda12x/),
# jax-cuda12-plugin (https://pypi.org/project/jax-cuda12-plugin/): a "cu<NN>" / "cuda<NN>[x]"
# part of the name is the CUDA major. PyTorch's own index marks CUDA builds with a local
# version: 2.9.0+cu126 (https://download.pytorch.org/whl/cu126).
_CUDA_NAME_PART = re.compile(r"(?:^|-)cu(?:da)?(\d{2})x?(?=-|$)")
_CUDA_LOCAL = re.compile(r"^cu(\d{2,3})$")
# Wheels whose version is the CUDA version itself (NVIDIA's CUDA runtime).
CUDA_RUNTIME_WHEELS = (
    "nvidia-cuda-runtime",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cuda-runtime-cu11",
)


@dataclass(frozen=True)
class WheelCheck:
    problems: tuple[Mismatch, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def accepted_platforms(platform: str, machine: MachineFacts) -> list[str] | None:
    """Platform tags wheels may have on ``platform`` here, best first; None when unknown."""
    from packaging.tags import mac_platforms

    if platform in LINUX_ARCH:
        arch = LINUX_ARCH[platform]
        tags = []
        glibc = _major_minor(machine.glibc)
        if glibc is not None and glibc[0] == 2:
            oldest = _OLDEST_GLIBC_MINOR.get(arch, _DEFAULT_OLDEST_GLIBC_MINOR)
            for minor in range(glibc[1], oldest - 1, -1):
                tags.append(f"manylinux_2_{minor}_{arch}")
                tags += [
                    f"{legacy}_{arch}"
                    for legacy, stands_for in LEGACY_MANYLINUX.items()
                    if stands_for == minor and arch in _LEGACY_ARCHES[legacy]
                ]
        return [*tags, f"linux_{arch}"]
    if platform in MACOS_ARCH:
        macos = _major_minor(machine.macos)
        if macos is None:
            return []
        return list(mac_platforms(version=macos, arch=MACOS_ARCH[platform]))
    if platform in WINDOWS_PLATFORM:
        return [WINDOWS_PLATFORM[platform]]
    return None


def check_wheels(
    wheels: Sequence[LockedWheel],
    python: PythonTarget | None,
    platform: str,
    machine: MachineFacts,
) -> WheelCheck:
    """Every reason the lock's wheels cannot be installed here, and CUDA warnings."""
    sources = [_source_mismatch(w) for w in wheels if not w.is_wheel]
    check = _check_candidates([w for w in wheels if w.is_wheel], python, platform, machine)
    return WheelCheck((*check.problems, *sources), check.warnings)


def _source_mismatch(wheel: LockedWheel) -> Mismatch:
    """A pip entry that is a source (sdist, VCS checkout): it would have to be built."""
    return Mismatch(
        f"pip package {wheel.name} {wheel.version} is a source, not a wheel ({wheel.url}); "
        f"setup-tool installs only wheels and builds nothing from source",
        "build a wheel of it (`pip wheel --no-deps <url>`), publish it to an index and relock, "
        "or install this lock with `conda-lock install`, which builds it with pip",
        "other",
    )


def _check_candidates(
    candidates: list[LockedWheel],
    python: PythonTarget | None,
    platform: str,
    machine: MachineFacts,
) -> WheelCheck:
    if not candidates:
        return WheelCheck()
    if python is None:
        return WheelCheck(
            (
                Mismatch(
                    f"the lock has pip packages ({_names(candidates)}) but no conda python "
                    f"package to install them into",
                    "add python to the environment's conda dependencies and relock",
                ),
            )
        )
    platforms = accepted_platforms(platform, machine)
    if platforms is None:
        return WheelCheck(
            (
                Mismatch(
                    f"setup-tool cannot tell which wheels run on {platform} "
                    f"(pip packages: {_names(candidates)})",
                    "install this lock with `conda-lock install`",
                    "platform",
                ),
            )
        )
    from packaging.tags import compatible_tags, cpython_tags

    accepted = {
        *cpython_tags(python.version, [python.abi], platforms),
        *compatible_tags(python.version, python.interpreter, platforms),
    }
    problems = [
        problem
        for wheel in candidates
        if not (wheel.tags() & accepted)
        for problem in [_why_not(wheel, python, platform, platforms, accepted, machine)]
    ]
    cuda_problems, warnings = _check_cuda(candidates, machine)
    return WheelCheck(tuple(cuda_problems + _merged(problems)), tuple(warnings))


def _merged(problems: list[Mismatch]) -> list[Mismatch]:
    """One mismatch per fix: twenty wheels for another Python are one reason, not twenty."""
    by_fix: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        by_fix.setdefault((problem.kind, problem.fix), []).append(problem.reason)
    return [Mismatch("; ".join(reasons), fix, kind) for (kind, fix), reasons in by_fix.items()]


def _why_not(
    wheel: LockedWheel,
    python: PythonTarget,
    platform: str,
    platforms: list[str],
    accepted: set[Any],
    machine: MachineFacts,
) -> Mismatch:
    from packaging.tags import Tag

    tags = wheel.tags()
    here = set(platforms)
    python_fits = any(
        Tag(tag.interpreter, tag.abi, ours) in accepted for tag in tags for ours in platforms
    ) or any(Tag(tag.interpreter, tag.abi, "any") in accepted for tag in tags)
    what = f"{wheel.name} {wheel.version} ({wheel.filename})"
    if not python_fits:
        built_for = ", ".join(sorted({f"{t.interpreter}-{t.abi}" for t in tags}))
        return Mismatch(
            f"{what} is built for {built_for} but the environment's Python is {python}",
            f"relock so that the pip packages are resolved for {python}, or lock the Python "
            f"this wheel is for",
        )
    platform_tags = sorted({t.platform for t in tags} - {"any"})
    if any(p in here for p in platform_tags):
        return Mismatch(  # each part fits, not in one tag (a pure-Python wheel for cp3X only)
            f"{what} has no tag that fits the environment's {python} on {platform}",
            "relock the pip packages for this platform and Python",
        )
    return _platform_mismatch(what, platform_tags, platform, machine)


def _platform_mismatch(
    what: str, tags: list[str], platform: str, machine: MachineFacts
) -> Mismatch:
    """Why wheel platform tags do not fit: glibc too old, macOS too old, or another platform."""
    arch = LINUX_ARCH.get(platform) or MACOS_ARCH.get(platform)
    glibc_needed = [
        needed for tag in tags if (needed := _manylinux_glibc(tag)) and needed[1] == arch
    ]
    if platform in LINUX_ARCH and glibc_needed:
        lowest = min(minor for minor, _ in glibc_needed)
        if machine.glibc is None:
            return Mismatch(
                f"{what} needs glibc 2.{lowest} and this machine's glibc is unknown",
                "set CONDA_OVERRIDE_GLIBC to this machine's glibc version",
                "glibc",
            )
        return Mismatch(
            f"{what} needs glibc 2.{lowest} (manylinux) but this machine has glibc {machine.glibc}",
            f"use a machine or distribution with glibc 2.{lowest} or newer, or relock the pip "
            f"packages for an older manylinux baseline",
            "glibc",
        )
    macos_needed = [m.groups() for tag in tags if (m := _MACOSX.match(tag))]
    macos_arches = {a for _, _, a in macos_needed}
    if platform in MACOS_ARCH and (arch in macos_arches or "universal2" in macos_arches):
        lowest_mac = min((int(a), int(b)) for a, b, _ in macos_needed)
        return Mismatch(
            f"{what} needs macOS {lowest_mac[0]}.{lowest_mac[1]} but this machine has macOS "
            f"{machine.macos or 'unknown'}",
            f"use macOS {lowest_mac[0]}.{lowest_mac[1]} or newer, or relock the pip packages "
            f"for an older macOS",
            "macos",
        )
    libc = (
        " (musl libc; conda environments use glibc)" if any("musllinux" in t for t in tags) else ""
    )
    return Mismatch(
        f"{what} is built for {', '.join(tags)}{libc}, not for this machine's {platform}",
        f"relock the pip packages for {platform}",
        "platform",
    )


def _manylinux_glibc(tag: str) -> tuple[int, str] | None:
    """``manylinux_2_28_x86_64`` → (28, "x86_64"); legacy names too; None otherwise."""
    if match := _MANYLINUX.match(tag):
        return int(match.group(2)), match.group(3)
    for legacy, minor in LEGACY_MANYLINUX.items():
        if tag.startswith(f"{legacy}_"):
            return minor, tag[len(legacy) + 1 :]
    return None


# --- CUDA ------------------------------------------------------------------------------------


def required_cuda(wheel: LockedWheel) -> str | None:
    """The CUDA version (``12`` or ``12.6``) a wheel is built for, or None for a non-CUDA one."""
    key = wheel.key
    if key in CUDA_RUNTIME_WHEELS and (version := _version_major_minor(wheel.version)):
        return version
    try:
        local = Version(wheel.version).local
    except InvalidVersion:
        local = None
    if local and (match := _CUDA_LOCAL.match(local)):
        digits = match.group(1)
        return f"{int(digits[:-1])}.{digits[-1]}"
    if match := _CUDA_NAME_PART.search(key):
        return str(int(match.group(1)))
    return None


def _check_cuda(
    wheels: Iterable[LockedWheel], machine: MachineFacts
) -> tuple[list[Mismatch], list[str]]:
    needs = [(cuda, wheel) for wheel in wheels if (cuda := required_cuda(wheel)) is not None]
    if not needs:
        return [], []
    cuda, wheel = max(needs, key=lambda need: (Version(need[0]), need[0].count(".")))
    verdict = _cuda_verdict(cuda, f"{wheel.name} {wheel.version}", machine)
    if isinstance(verdict, Mismatch):
        return [verdict], []
    return [], [verdict] if verdict else []


def _cuda_verdict(cuda: str, why: str, machine: MachineFacts) -> Mismatch | str | None:
    """Does the driver run a CUDA ``cuda`` build (``cuda_compat``'s rule): a refusal, a
    warning, or None (fits)."""
    fit = cuda_compat.check(cuda, machine.driver_cuda, driver_version=machine.driver_version)
    if fit.fits:
        return f"{why}: {fit.warning}" if fit.warning else None
    major = cuda.split(".", maxsplit=1)[0]
    if machine.driver_cuda is None:
        driver = f"driver {fit.minimum_driver} or newer" if fit.minimum_driver else "driver"
        return Mismatch(
            f"the lock's pip packages are CUDA {cuda} builds ({why}) but this machine has no "
            f"NVIDIA driver",
            f"install an NVIDIA {driver}, or relock the pip packages with CPU wheels",
            "cuda",
        )
    driver = f"driver {machine.driver_version}" if machine.driver_version else "the driver"
    update = (
        f"update the NVIDIA driver to {fit.minimum_driver} or newer"
        if fit.minimum_driver
        else f"update the NVIDIA driver to one for CUDA {major}"
    )
    return Mismatch(
        f"the lock's pip packages need CUDA {major} ({why}) but {driver} supports CUDA "
        f"{machine.driver_cuda}",
        f"{update}, or relock the pip packages with CPU wheels",
        "cuda",
    )


def _names(wheels: Sequence[LockedWheel]) -> str:
    names = [w.name for w in wheels]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _major_minor(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _version_major_minor(version: str) -> str | None:
    numbers = _major_minor(version)
    return f"{numbers[0]}.{numbers[1]}" if numbers else None
