"""Virtual packages: what the conda solver is told about a machine (``__cuda``, ``__glibc``, ...).

Two sets are built here, with one function each:

- ``for_machine``: this machine as detected (for ``detect`` and for installing here).
- ``baseline``: the oldest machine a lock must still serve (for ``lock``, which solves every
  platform of a variant from any machine and must never see the locking machine's facts).

Values are plain data; turning them into py-rattler objects happens where the solver is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setup_tool.variants import MPS_MIN_MACOS

# The baseline a lock targets, per subdir. Matches conda-lock's own defaults
# (conda_lock/default-virtual-packages.yaml, 4.0.3) except: no __cuda at all unless the variant
# asks for one (conda-lock's default __cuda 11.4 pulls CUDA builds into CPU locks,
# conda/conda-lock#426), and __osx is the macOS current PyTorch needs for MPS (2.10+ requires
# macOS 14, pytorch/pytorch#177819) instead of 11.0.
BASELINE: dict[str, dict[str, str]] = {
    "linux-64": {"__unix": "0", "__linux": "5.10", "__glibc": "2.28", "__archspec": "1 x86_64"},
    "linux-aarch64": {
        "__unix": "0",
        "__linux": "5.10",
        "__glibc": "2.28",
        "__archspec": "1 aarch64",
    },
    "osx-arm64": {"__unix": "0", "__osx": MPS_MIN_MACOS, "__archspec": "1 arm64"},
    "osx-64": {"__unix": "0", "__osx": "11.0", "__archspec": "1 x86_64"},
    "win-64": {"__win": "0", "__archspec": "1 x86_64"},
}


@dataclass(frozen=True, order=True)
class VirtualPackage:
    """One virtual package: ``__cuda 13.0 0`` is ``VirtualPackage("__cuda", "13.0")``."""

    name: str
    version: str
    build: str = "0"

    def __str__(self) -> str:
        return f"{self.name}={self.version}={self.build}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "build": self.build}

    def to_rattler(self) -> Any:
        """A ``rattler.GenericVirtualPackage`` (imports py-rattler, so only call when solving)."""
        from rattler import BuildString, GenericVirtualPackage, PackageName, Version

        return GenericVirtualPackage(
            PackageName(self.name), Version(self.version), BuildString(self.build)
        )


def _from_table(table: dict[str, str]) -> list[VirtualPackage]:
    packages = []
    for name, value in table.items():
        version, _, build = value.partition(" ")
        packages.append(VirtualPackage(name, version, build or "0"))
    return packages


def baseline(subdir: str, cuda: str | None = None) -> tuple[VirtualPackage, ...]:
    """The virtual packages a lock of ``subdir`` is solved with; ``__cuda`` only when given."""
    if subdir not in BASELINE:
        raise KeyError(subdir)
    packages = _from_table(BASELINE[subdir])
    if cuda is not None:
        packages.append(VirtualPackage("__cuda", cuda))
    return tuple(sorted(packages))


def for_machine(
    subdir: str,
    *,
    cuda: str | None = None,
    glibc: str | None = None,
    linux_kernel: str | None = None,
    macos: str | None = None,
) -> tuple[VirtualPackage, ...]:
    """This machine's virtual packages, starting from the baseline and replacing what is known.

    ``__archspec`` stays the generic architecture (``x86_64``, ``aarch64``, ``arm64``): conda's
    micro-architecture names (``x86_64_v3``, ``m2``) only matter to packages that select on
    them, and a generic value never admits a build this CPU cannot run.
    """
    table = dict(BASELINE.get(subdir, {"__unix": "0"}))
    if glibc and "__glibc" in table:
        table["__glibc"] = glibc
    if linux_kernel and "__linux" in table:
        table["__linux"] = _numeric_prefix(linux_kernel) or table["__linux"]
    if macos and "__osx" in table:
        table["__osx"] = macos
    packages = _from_table(table)
    if cuda is not None:
        packages.append(VirtualPackage("__cuda", cuda))
    return tuple(sorted(packages))


def _numeric_prefix(release: str) -> str | None:
    """``6.1.0-18-amd64`` → ``6.1.0``: conda's ``__linux`` version is the numeric release."""
    parts = []
    for part in release.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(digits)
        if digits != part:
            break
    return ".".join(parts) or None
