"""What an install would do: packages to add, remove, change and keep, and what to download.

The current environment is what its ``conda-meta/*.json`` records say is installed, so a
package removed by hand (the drift the doctor reports) shows up as one to add again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from setup_tool.install.download import PackageCache
from setup_tool.install.lockread import LockedPackage, LockedPlatform


@dataclass(frozen=True)
class Change:
    name: str
    old: str  # "version build"
    new: str


@dataclass(frozen=True)
class Plan:
    add: tuple[LockedPackage, ...]
    remove: tuple[str, ...]
    change: tuple[Change, ...]
    keep: tuple[str, ...]
    to_download: tuple[LockedPackage, ...]
    download_bytes: int | None = None  # None: not every size is known
    unknown_sizes: tuple[str, ...] = field(default_factory=tuple)
    known_bytes: int = 0  # the sizes that are known
    size_note: str | None = None  # why sizes are unknown, when some are

    @property
    def up_to_date(self) -> bool:
        return not (self.add or self.remove or self.change)

    def to_json(self) -> dict[str, Any]:
        return {
            "add": [p.spec for p in self.add],
            "remove": list(self.remove),
            "change": [{"name": c.name, "from": c.old, "to": c.new} for c in self.change],
            "keep": len(self.keep),
            "download": {
                "packages": len(self.to_download),
                "bytes": self.download_bytes,
                "known_bytes": self.known_bytes,
                "unknown_sizes": len(self.unknown_sizes),
                "size_note": self.size_note,
            },
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
) -> Plan:
    """Compare the lock with what is installed (name → version, build, sha256; see
    ``prefix.installed_records``) and with what is already cached."""
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
    to_download = tuple(p for p in locked.packages if not cache.has(p))
    known = 0
    unknown = []
    for package in to_download:
        size = (sizes or {}).get(package.name)
        if size is None:
            unknown.append(package.name)
        else:
            known += size
    total = known if sizes is not None and not unknown else None
    return Plan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        keep=tuple(keep),
        to_download=to_download,
        download_bytes=total,
        unknown_sizes=tuple(unknown) if sizes is not None else (),
        known_bytes=known,
        size_note=size_note if unknown else None,
    )
