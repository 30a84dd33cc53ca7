"""What locking and checking return: frozen results, one per variant and per platform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from setup_tool.lock.channels import Channels
from setup_tool.lock.pip_indexes import PipIndexes
from setup_tool.variants import Variant


@dataclass(frozen=True)
class PlatformLock:
    """One platform of a written lock. ``solved`` is False for a platform kept as it was."""

    platform: str
    packages: int
    pytorch: str | None  # "2.13.0 cuda129_mkl_py312_h22744d8_302"
    cuda_version: str | None  # the locked cuda-version package, if any
    virtual_packages: str
    seconds: float
    solved: bool = True
    pip_packages: int = 0  # wheels locked from the `- pip:` section


@dataclass(frozen=True)
class LockResult:
    """What ``lock_variant`` did for one variant."""

    variant: Variant
    path: Path
    platforms: tuple[PlatformLock, ...]
    channels: Channels
    cuda: str | None
    changed: bool  # False: the file already had exactly this content


@dataclass(frozen=True)
class PlatformStatus:
    """``current``, ``stale`` (the spec changed), ``channels`` (the spec is the same, but the
    lock was made from other channels or pip indexes than the ones checked against), ``missing``
    (not locked), ``torch`` (locked with PyTorch from another source than asked for)
    or ``extra`` (dropped from the spec but still in the lock)."""

    platform: str
    state: str


@dataclass(frozen=True)
class CheckResult:
    """What ``check_lock`` found for one variant; ``refresh`` is the command that fixes it."""

    variant: Variant
    path: Path
    platforms: tuple[PlatformStatus, ...]
    refresh: str
    problem: str | None = None  # "missing" or "unreadable: ..." for the file as a whole
    channels: Channels | None = None  # the channels it was checked against
    locked_channels: tuple[str, ...] = ()  # the channels the lockfile records (conda-lock's)
    pip_indexes: PipIndexes | None = None  # the pip indexes it was checked against
    locked_pip_indexes: tuple[str, ...] = ()  # the ones the lockfile records
    torch_from: str = "conda-forge"  # where PyTorch comes from in what was checked against
    locked_torch_from: str | None = None  # what the lockfile records

    @property
    def up_to_date(self) -> bool:
        return self.problem is None and all(p.state == "current" for p in self.platforms)

    @property
    def stale_platforms(self) -> tuple[str, ...]:
        return tuple(p.platform for p in self.platforms if p.state != "current")
