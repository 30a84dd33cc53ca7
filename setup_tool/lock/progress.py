"""What a lock reports while it works. The base does nothing; ``setup_tool.cli.lock`` renders it.

The same shape as ``setup_tool.install.progress``: the core emits events with plain data, and
only the CLI turns them into text.
"""

from __future__ import annotations

from collections.abc import Sequence

from setup_tool.lock.channels import Channels
from setup_tool.lock.results import PlatformLock
from setup_tool.variants import Variant


class LockProgress:
    """Events of ``lock_variants``, in order: ``locking`` once per variant, then ``solved`` as
    each platform's solve finishes (in completion order, not request order)."""

    def locking(self, variant: Variant, platforms: Sequence[str], channels: Channels) -> None:
        """The solves for ``variant`` on ``platforms`` are about to start."""

    def solved(self, variant: Variant, lock: PlatformLock) -> None:
        """One platform of ``variant`` is solved."""
