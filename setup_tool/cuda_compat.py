"""One rule for "does this CUDA build run on this NVIDIA driver?", used by every command.

``detect`` (which conda-forge build to pick), ``lock``, ``install``'s machine check (conda
packages and CUDA wheels) and the doctor all ask here, so they can never disagree.

The rule is CUDA's **minor-version compatibility**: a build made with any CUDA X.y toolkit
runs on any driver of the X family or newer. The driver's own "CUDA Version" (NVML, the
``nvidia-smi`` header, conda's ``__cuda``) is the newest CUDA it supports; when its minor is
older than the build's, the build still runs, and only two things can fail, so it is a
warning and not a refusal:

- PTX JIT compilation: kernels shipped only as PTX from the newer toolkit (for GPUs newer
  than the build has binary kernels for) cannot be compiled by the older driver;
- APIs and features that need a newer driver.

Sources (public):

- NVIDIA, "CUDA Compatibility" (https://docs.nvidia.com/deploy/cuda-compatibility/),
  "Minor Version Compatibility": CUDA 12.x needs driver >= 525.60.13, 13.x >= 580,
  11.1-11.8 >= 450.80.02, and the limits above.
- NVIDIA, CUDA Toolkit release notes
  (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/), table "CUDA Toolkit and
  Corresponding Driver Versions": the driver each toolkit release ships with.
- conda-forge/cuda-version-feedstock, ``recipe/meta.yaml``: ``cuda-version X.Y`` constrains
  only ``__cuda >=X`` ("major version is lower bound").
- astral-sh/uv, ``crates/uv-torch/src/backend.rs`` (``LINUX_CUDA_DRIVERS``, used by
  ``--torch-backend=auto``): cu120 to cu129 on driver >= 525.60.13, cu130 on >= 580.

Everything here is a pure function of version strings; nothing probes the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

# Minimum Linux driver for a CUDA major under minor-version compatibility (NVIDIA, "CUDA
# Compatibility", table "CUDA Toolkit ... minimum required driver version for minor version
# compatibility"; the same figures as uv's LINUX_CUDA_DRIVERS). CUDA 11.0 predates minor-version
# compatibility: its builds need 450.36.06.
LINUX_DRIVER_FOR_MAJOR: dict[int, str] = {
    11: "450.80.02",
    12: "525.60.13",
    13: "580",
}

# The driver each CUDA toolkit release ships with (CUDA Toolkit release notes, table "CUDA
# Toolkit and Corresponding Driver Versions", Linux column). A driver of at least this version
# supports that CUDA fully, which is what its "CUDA Version" reports. Used to infer the driver's
# CUDA when only its version is known (no NVML, no nvidia-smi), and to name the driver that
# removes a minor-version warning.
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

# Stable rule identifiers, for ``--json`` (documented in docs/detect.md and docs/install.md).
RULE_FULL_SUPPORT = "driver-cuda-at-least-build"  # driver CUDA >= the build's major.minor
RULE_MINOR_COMPAT = "cuda-minor-version-compatibility"  # same major, older minor: warning
RULE_DRIVER_TOO_OLD = "driver-major-too-old"  # the driver's CUDA major is older than the build's
RULE_NO_DRIVER = "no-nvidia-driver"  # no driver CUDA at all
RULE_UNREADABLE = "unreadable-cuda-version"  # a version string that is not a version

RULE_TEXT = (
    "a CUDA X.y build runs on a driver for CUDA X or newer (CUDA minor-version compatibility: "
    "12.x needs driver >= 525.60.13, 13.x needs >= 580); an older driver minor is a warning"
)

MINOR_COMPAT_LIMITS = (
    "PTX JIT compilation of kernels built for newer GPUs and features that need a newer driver "
    "can fail"
)


@dataclass(frozen=True)
class CudaFit:
    """The verdict for one CUDA build on one driver.

    ``fits``: the build runs. ``rule``: one of the ``RULE_*`` ids. ``warning``: set when it runs
    through minor-version compatibility. ``minimum_driver``: when it does not fit, the oldest
    driver that runs it (the major's minimum); when it fits with a warning, the driver that
    supports the build's CUDA fully (None if the table does not know it).
    """

    fits: bool
    rule: str
    build: str
    driver_cuda: str | None
    reason: str
    warning: str | None = None
    minimum_driver: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "rule": self.rule,
            "rule_text": RULE_TEXT,
            "build": self.build,
            "driver_cuda": self.driver_cuda,
            "reason": self.reason,
            "warning": self.warning,
            "minimum_driver": self.minimum_driver,
        }


def parse_cuda(version: str) -> tuple[int, int] | None:
    """``"12.9"`` → (12, 9); ``"12"`` → (12, 0); ``"12.9.1"`` → (12, 9); garbage → None."""
    try:
        parsed = Version(version.strip())
    except (InvalidVersion, AttributeError):
        return None
    return parsed.major, parsed.minor


def minimum_driver_for_major(major: int) -> str | None:
    """The oldest Linux driver that runs CUDA ``major``.x builds, or None if unknown."""
    return LINUX_DRIVER_FOR_MAJOR.get(major)


def min_driver_for(cuda: str) -> str | None:
    """The driver that supports CUDA ``cuda`` (its major.minor) fully, or None if unknown."""
    wanted = parse_cuda(cuda)
    for known, minimum in CUDA_MIN_LINUX_DRIVER:
        if parse_cuda(known) == wanted:
            return minimum
    return None


def cuda_from_driver(driver_version: str) -> str | None:
    """The newest CUDA a Linux driver supports fully (the release-notes table), or None."""
    try:
        driver = Version(driver_version)
    except InvalidVersion:
        return None
    best = None
    for cuda, minimum in CUDA_MIN_LINUX_DRIVER:
        if driver >= Version(minimum):
            best = cuda
    return best


def check(build: str, driver_cuda: str | None, *, driver_version: str | None = None) -> CudaFit:
    """Does a build made for CUDA ``build`` run on a driver whose CUDA is ``driver_cuda``?

    ``build`` may be a major alone (``"12"``: a CUDA 12 wheel or a lock's major lower bound).
    ``driver_version``, when known, is checked against the major's minimum too (it matters only
    for CUDA 11, whose 11.0 drivers predate minor-version compatibility).
    """
    wanted = parse_cuda(build)
    if wanted is None:
        return CudaFit(
            False, RULE_UNREADABLE, build, driver_cuda, f"{build!r} is not a CUDA version"
        )
    major_minimum = minimum_driver_for_major(wanted[0])
    if driver_cuda is None:
        return CudaFit(
            False,
            RULE_NO_DRIVER,
            build,
            None,
            f"a CUDA {build} build needs an NVIDIA driver and none was found",
            minimum_driver=major_minimum,
        )
    have = parse_cuda(driver_cuda)
    if have is None:
        return CudaFit(
            False, RULE_UNREADABLE, build, driver_cuda, f"{driver_cuda!r} is not a CUDA version"
        )
    if have[0] < wanted[0] or _driver_below(driver_version, major_minimum):
        return _too_old(build, wanted[0], driver_cuda, driver_version, major_minimum)
    if have < wanted:
        return _minor_compatible(build, driver_cuda)
    return CudaFit(
        True,
        RULE_FULL_SUPPORT,
        build,
        driver_cuda,
        f"the driver supports CUDA {driver_cuda}, at least the build's {build}",
    )


def _too_old(
    build: str, major: int, driver_cuda: str, driver_version: str | None, minimum: str | None
) -> CudaFit:
    driver = f"driver {driver_version}" if driver_version else "the driver"
    return CudaFit(
        False,
        RULE_DRIVER_TOO_OLD,
        build,
        driver_cuda,
        f"a CUDA {build} build needs a driver for CUDA {major} or newer"
        + (f" (>= {minimum})" if minimum else "")
        + f"; {driver} supports CUDA {driver_cuda}",
        minimum_driver=minimum,
    )


def _minor_compatible(build: str, driver_cuda: str) -> CudaFit:
    full = min_driver_for(build)
    upgrade = f"; driver {full} or newer supports CUDA {build} fully" if full else ""
    return CudaFit(
        True,
        RULE_MINOR_COMPAT,
        build,
        driver_cuda,
        f"the driver's CUDA {driver_cuda} is older than the build's {build} but of the same "
        f"major: it runs through CUDA minor-version compatibility",
        warning=(
            f"the NVIDIA driver supports CUDA {driver_cuda}, older than this CUDA {build} "
            f"build; it runs through CUDA minor-version compatibility, but "
            f"{MINOR_COMPAT_LIMITS}{upgrade}"
        ),
        minimum_driver=full,
    )


def _driver_below(driver_version: str | None, minimum: str | None) -> bool:
    if not driver_version or not minimum:
        return False
    try:
        return Version(driver_version) < Version(minimum)
    except InvalidVersion:
        return False
