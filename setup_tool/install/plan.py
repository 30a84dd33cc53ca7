"""What an install would do: packages to add, remove, change and keep, and what to download.

The current environment is what its ``conda-meta/*.json`` records say is installed, so a
package removed by hand (the drift the doctor reports) shows up as one to add again. The pip
part (``WheelPlan``) compares the lock's wheels with the ``site-packages/*.dist-info`` that no
conda package owns: a wheel removed by hand is added again, one installed by hand (``pip
install``) is removed, and one setup-tool did not install from the locked file is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from setup_tool.install.download import Artifact, PackageCache
from setup_tool.install.lockread import LockedPackage, LockedPlatform
from setup_tool.install.sitepackages import InstalledDist
from setup_tool.install.wheels import LockedWheel


@dataclass(frozen=True)
class Change:
    name: str
    old: str  # "version build"
    new: str


@dataclass(frozen=True)
class WheelPlan:
    """The pip part of a plan (names are the lock's; ``remove`` holds "name version")."""

    add: tuple[LockedWheel, ...] = ()
    remove: tuple[str, ...] = ()
    change: tuple[Change, ...] = ()
    keep: tuple[str, ...] = ()
    to_download: tuple[LockedWheel, ...] = ()
    download_bytes: int | None = None
    unknown_sizes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def up_to_date(self) -> bool:
        return not (self.add or self.remove or self.change)

    def to_json(self) -> dict[str, Any]:
        return {
            "add": [w.spec for w in self.add],
            "remove": list(self.remove),
            "change": [{"name": c.name, "from": c.old, "to": c.new} for c in self.change],
            "keep": len(self.keep),
            "download": {"packages": len(self.to_download), "bytes": self.download_bytes},
        }


@dataclass(frozen=True)
class Plan:
    add: tuple[LockedPackage, ...]
    remove: tuple[str, ...]
    change: tuple[Change, ...]
    keep: tuple[str, ...]
    to_download: tuple[LockedPackage, ...]
    download_bytes: int | None = None  # None: unknown (a server did not say)
    unknown_sizes: tuple[str, ...] = field(default_factory=tuple)
    pip: WheelPlan = field(default_factory=WheelPlan)

    @property
    def up_to_date(self) -> bool:
        return not (self.add or self.remove or self.change) and self.pip.up_to_date

    def to_json(self) -> dict[str, Any]:
        return {
            "add": [p.spec for p in self.add],
            "remove": list(self.remove),
            "change": [{"name": c.name, "from": c.old, "to": c.new} for c in self.change],
            "keep": len(self.keep),
            "download": {
                "packages": len(self.to_download),
                "bytes": self.download_bytes,
            },
            "pip": self.pip.to_json(),
        }


def make_plan(
    locked: LockedPlatform,
    current: Mapping[str, Mapping[str, str]],
    cache: PackageCache,
    sizes: Mapping[str, int | None] | None = None,
    *,
    current_wheels: Mapping[str, InstalledDist] | None = None,
    wheel_sizes: Mapping[str, int | None] | None = None,
) -> Plan:
    """Compare the lock with what is installed (name → version, build, sha256; see
    ``prefix.installed_records``; pip: ``sitepackages.installed_dists`` less conda's) and
    with what is already cached."""
    add, change, keep = [], [], []
    for package in sorted(locked.packages, key=lambda p: p.name):
        old = current.get(package.name)
        if old is None:
            add.append(package)
        elif old.get("sha256") != package.sha256:  # a rebuild changes the hash, not the version
            change.append(
                Change(
                    package.name,
                    f"{old.get('version')} {old.get('build')}",
                    f"{package.version} {package.build}",
                )
            )
        else:
            keep.append(package.name)
    wanted = {p.name for p in locked.packages}
    remove = sorted(name for name in current if name not in wanted)
    to_download = tuple(p for p in locked.packages if not cache.has(p))
    total, unknown = _download_total(to_download, sizes)
    return Plan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        keep=tuple(keep),
        to_download=to_download,
        download_bytes=total,
        unknown_sizes=unknown,
        pip=make_wheel_plan(locked.wheels, current_wheels or {}, cache, wheel_sizes),
    )


def make_wheel_plan(
    wheels: tuple[LockedWheel, ...],
    current: Mapping[str, InstalledDist],
    cache: PackageCache,
    sizes: Mapping[str, int | None] | None = None,
) -> WheelPlan:
    """The lock's wheels against the distributions pip-installed in the prefix (by canonical
    name). Kept only when setup-tool installed exactly the locked file (its sha256)."""
    add, change, keep = [], [], []
    for wheel in sorted(wheels, key=lambda w: w.key):
        old = current.get(wheel.key)
        if old is None:
            add.append(wheel)
        elif old.ours and old.sha256 == wheel.sha256:
            keep.append(wheel.name)
        else:
            how = "" if old.ours else f", installed by {old.installer or 'an unknown tool'}"
            change.append(Change(wheel.name, f"{old.version}{how}", wheel.version))
    wanted = {w.key for w in wheels}
    remove = sorted(f"{d.name} {d.version}" for key, d in current.items() if key not in wanted)
    to_download = tuple(w for w in wheels if not cache.has(w))
    total, unknown = _download_total(to_download, sizes)
    return WheelPlan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        keep=tuple(keep),
        to_download=to_download,
        download_bytes=total,
        unknown_sizes=unknown,
    )


def _download_total(
    to_download: tuple[Artifact, ...], sizes: Mapping[str, int | None] | None
) -> tuple[int | None, tuple[str, ...]]:
    """Bytes to download (None: unknown, or sizes not asked for) and the unknown ones."""
    if sizes is None:
        return None, ()
    total = 0
    unknown = tuple(p.name for p in to_download if sizes.get(p.name) is None)
    for package in to_download:
        total += sizes.get(package.name) or 0
    return (None if unknown else total), unknown
