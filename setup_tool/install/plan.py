"""What an install would do: packages to add, remove, change and keep, and what to download.

The current environment is what its ``conda-meta/*.json`` records say is installed, so a
package removed by hand (the drift the doctor reports) shows up as one to add again. The pip
part (``WheelPlan``) compares the lock's wheels with the ``site-packages/*.dist-info`` that no
conda package owns: a wheel removed by hand is added again, one installed by hand (``pip
install``) is removed, and one setup-tool did not install from the locked file is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
class Sizes:
    """What there is to download, as far as sizes are known."""

    total: int | None = None  # None: not every size is known (or sizes were not asked for)
    unknown: tuple[str, ...] = ()
    known: int = 0
    note: str | None = None  # why sizes are unknown, when some are

    def to_json(self, count: int) -> dict[str, Any]:
        return {
            "packages": count,
            "bytes": self.total if count else 0,  # nothing to download is 0 bytes, known
            "known_bytes": self.known,
            "unknown_sizes": len(self.unknown),
            "size_note": self.note,
        }


def sizes_of(
    to_download: tuple[Artifact, ...],
    sizes: Mapping[str, int | None] | None,
    note: str | None = None,
) -> Sizes:
    """Known and unknown sizes of what is to be downloaded (``sizes``: None when not asked)."""
    known = 0
    unknown = []
    for package in to_download:
        size = (sizes or {}).get(package.name)
        if size is None:
            unknown.append(package.name)
        else:
            known += size
    total = known if sizes is not None and not unknown else None
    return Sizes(
        total=total,
        unknown=tuple(unknown) if sizes is not None else (),
        known=known,
        note=note if unknown else None,
    )


@dataclass(frozen=True)
class WheelPlan:
    """The pip part of a plan (names are the lock's; ``remove`` holds "name version")."""

    add: tuple[LockedWheel, ...] = ()
    remove: tuple[str, ...] = ()
    change: tuple[Change, ...] = ()
    keep: tuple[str, ...] = ()
    to_download: tuple[LockedWheel, ...] = ()
    sizes: Sizes = field(default_factory=Sizes)

    @property
    def download_bytes(self) -> int | None:
        return self.sizes.total

    @property
    def up_to_date(self) -> bool:
        return not (self.add or self.remove or self.change)

    def to_json(self) -> dict[str, Any]:
        return _plan_json(self)


@dataclass(frozen=True)
class Plan:
    add: tuple[LockedPackage, ...]
    remove: tuple[str, ...]
    change: tuple[Change, ...]
    keep: tuple[str, ...]
    to_download: tuple[LockedPackage, ...]
    sizes: Sizes = field(default_factory=Sizes)
    pip: WheelPlan = field(default_factory=WheelPlan)

    @property
    def up_to_date(self) -> bool:
        return not (self.add or self.remove or self.change) and self.pip.up_to_date

    def to_json(self) -> dict[str, Any]:
        return {**_plan_json(self), "pip": self.pip.to_json()}


def _plan_json(plan: Plan | WheelPlan) -> dict[str, Any]:
    """The conda or the pip part of ``install --json``'s ``plan`` (docs/install.md)."""
    return {
        "add": [item.spec for item in plan.add],
        "remove": list(plan.remove),
        "change": [{"name": c.name, "from": c.old, "to": c.new} for c in plan.change],
        "keep": len(plan.keep),
        "download": plan.sizes.to_json(len(plan.to_download)),
    }


def _same_archive(old: Mapping[str, str], package: LockedPackage) -> bool:
    """Whether the installed record is this very archive: a rebuild changes the hash, not the
    version. Compared by the hash the lock has (md5 for md5-only packages); an unverified
    package (no hash in the lock) by version and build."""
    if package.hash_kind == "sha256":
        return old.get("sha256") == package.sha256
    if package.hash_kind == "md5":
        return old.get("md5") == package.md5
    return (old.get("version"), old.get("build")) == (package.version, package.build)


def make_plan(
    locked: LockedPlatform,
    current: Mapping[str, Mapping[str, str]],
    cache: PackageCache,
    sizes: Mapping[str, int | None] | None = None,
    size_note: str | None = None,
    *,
    current_wheels: Mapping[str, InstalledDist] | None = None,
    wheel_sizes: Mapping[str, int | None] | None = None,
) -> Plan:
    """Compare the lock with what is installed (name → version, build, sha256; see
    ``prefix.installed_records``; pip: ``sitepackages.pip_installed``) and with what is
    already cached."""
    add, change, keep = [], [], []
    for package in sorted(locked.packages, key=lambda p: p.name):
        old = current.get(package.name)
        if old is None:
            add.append(package)
        elif not _same_archive(old, package):
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
    pip = make_wheel_plan(
        locked.wheels, current_wheels or {}, cache, wheel_sizes, size_note=size_note
    )
    if not (add or change or remove) and pip.up_to_date:
        # Nothing changes, so nothing is fetched (a change rebuilds the whole environment,
        # which is why the packages kept count below when something does change).
        return Plan((), (), (), tuple(keep), (), pip=replace(pip, to_download=(), sizes=Sizes()))
    to_download = tuple(p for p in locked.packages if not cache.has(p))
    return Plan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        keep=tuple(keep),
        to_download=to_download,
        sizes=sizes_of(to_download, sizes, size_note),
        pip=pip,
    )


def make_wheel_plan(
    wheels: tuple[LockedWheel, ...],
    current: Mapping[str, InstalledDist],
    cache: PackageCache,
    sizes: Mapping[str, int | None] | None = None,
    *,
    size_note: str | None = None,
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
    return WheelPlan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        keep=tuple(keep),
        to_download=to_download,
        sizes=sizes_of(to_download, sizes, size_note),
    )
