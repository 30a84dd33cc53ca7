"""What a lock reports while it works. The base does nothing; ``setup_tool.cli.lock`` renders it.

The same shape as ``setup_tool.install.progress``: the core emits events with plain data, and
only the CLI turns them into text.
"""

from __future__ import annotations

from collections.abc import Sequence

from setup_tool.lock.channels import Channels
from setup_tool.lock.pip_indexes import PipIndexes
from setup_tool.lock.results import PlatformLock
from setup_tool.variants import Variant


class LockProgress:
    """Events of ``lock_variants``, in order: ``locking`` once per variant, then ``solved`` as
    each platform's solve finishes (in completion order, not request order); for specs with a
    ``- pip:`` section, then ``locking_pip`` once per variant and ``pip_locked`` per platform."""

    def locking(self, variant: Variant, platforms: Sequence[str], channels: Channels) -> None:
        """The solves for ``variant`` on ``platforms`` are about to start."""

    def solved(self, variant: Variant, lock: PlatformLock) -> None:
        """One platform of ``variant`` is solved (its conda packages)."""

    def locking_pip(self, variant: Variant, platforms: Sequence[str], indexes: PipIndexes) -> None:
        """The pip sections of ``variant`` on ``platforms`` are about to be resolved."""

    def pip_locked(self, variant: Variant, platform: str, packages: int, seconds: float) -> None:
        """One platform's pip section is resolved: ``packages`` wheels locked."""
