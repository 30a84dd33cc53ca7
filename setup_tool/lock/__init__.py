"""Locking: ``envs/base.yml`` + ``envs/<variant>.yml`` → ``envs/locks/<variant>.conda-lock.yml``.

The Python API that ``setup-tool lock``, ``install`` and ``env`` share. Nothing here imports
py-rattler or conda-lock until a function needs them.

``load_spec(root, variant, *, cuda=None) -> EnvSpec``
    Read and validate the variant's spec files (``SpecError`` with file and line otherwise).
    ``EnvSpec.platforms`` and ``EnvSpec.virtual_packages[platform]`` say what a lock targets.

``lock_variants(root, variants, *, platforms=None, channels=None, cuda=None, environ=None,
cache_dir=None, terminal=None, timeout_s=600) -> tuple[LockResult, ...]``
    Solve every platform of each variant with py-rattler (that platform's virtual packages, never
    this machine's) and write conda-lock files; nothing is written unless every solve succeeds.
    ``lock_variant(root, variant, **same)`` does one. Raises ``SpecError``/``UsageError`` (exit
    2), ``ChannelUnreachable`` or ``SolveError`` (exit 1).

``check_lock(root, variant, *, platforms=None, channels=None, cuda=None, environ=None)
-> CheckResult``
    No solve, no network: ``CheckResult.up_to_date``, ``.stale_platforms`` and ``.refresh`` (the
    command that relocks what is stale). ``check_locks(root, variants, **same)`` checks several,
    like ``lock_variants``. ``setup-tool lock --check`` exits 4 when one is not up to date.

Channels: ``channels`` argument, then ``SETUP_TOOL_CHANNEL``, then the spec (conda-forge).
The lockfile path is ``setup_tool.paths.lockfile_path(root, variant)``.
"""

from __future__ import annotations

from setup_tool.lock.command import (
    CheckResult,
    LockResult,
    PlatformLock,
    PlatformStatus,
    check_lock,
    check_locks,
    lock_variant,
    lock_variants,
    refresh_command,
)
from setup_tool.lock.spec import EnvSpec, load_spec

__all__ = [
    "CheckResult",
    "EnvSpec",
    "LockResult",
    "PlatformLock",
    "PlatformStatus",
    "check_lock",
    "check_locks",
    "load_spec",
    "lock_variant",
    "lock_variants",
    "refresh_command",
]
