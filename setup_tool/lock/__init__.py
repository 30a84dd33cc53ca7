"""Locking: ``envs/base.yml`` + ``envs/<variant>.yml`` → ``envs/locks/<variant>.conda-lock.yml``.

The Python API that ``setup-tool lock``, ``install`` and ``env`` share. Nothing here imports
py-rattler or conda-lock until a function needs them, and nothing here prints: results are
frozen dataclasses (``results.py``), progress goes to a ``LockProgress`` (``progress.py``) that
the CLI renders.

``load_spec(root, variant, *, cuda=None) -> EnvSpec``
    Read and validate the variant's spec files (``SpecError`` with file and line otherwise).
    ``EnvSpec.platforms`` and ``EnvSpec.virtual_packages[platform]`` say what a lock targets.

``lock_variants(root, variants, *, platforms=None, channels=None, cuda=None, environ=None,
cache_dir=None, progress=None, timeout_s=600) -> tuple[LockResult, ...]``
    Solve every platform of each variant with py-rattler (that platform's virtual packages, never
    this machine's) and write conda-lock files; nothing is written unless every solve succeeds.
    ``lock_variant(root, variant, **same)`` does one. Raises ``SpecError``/``UsageError`` (exit
    2), ``ChannelUnreachable`` or ``SolveError`` (exit 1). ``progress`` receives
    ``locking(variant, platforms, channels)`` and ``solved(variant, PlatformLock)`` events.

``check_lock(root, variant, *, platforms=None, channels=None, cuda=None, environ=None)
-> CheckResult``
    No solve, no network: ``CheckResult.up_to_date``, ``.stale_platforms`` and ``.refresh`` (the
    command that relocks what is stale). ``check_locks(root, variants, **same)`` checks several,
    like ``lock_variants``. ``setup-tool lock --check`` exits 4 when one is not up to date.

Channels: ``channels`` argument, then ``SETUP_TOOL_CHANNEL``, then the spec (conda-forge).
The lockfile path is ``setup_tool.paths.lockfile_path(root, variant)``.

Modules: ``spec.py`` (the envs/ files), ``channels.py`` (which channels, are they reachable),
``plan.py`` (what one run works on), ``solve.py`` (py-rattler), ``condalock.py`` (conda-lock's
parser, hash, models and writer), ``lockfile.py`` (a lockfile's bytes, the atomic write),
``locking.py`` (``lock_variants``), ``checking.py`` (``check_lock``).
"""

from __future__ import annotations

from setup_tool.lock.checking import check_lock, check_locks
from setup_tool.lock.locking import lock_variant, lock_variants
from setup_tool.lock.plan import refresh_command
from setup_tool.lock.progress import LockProgress
from setup_tool.lock.results import CheckResult, LockResult, PlatformLock, PlatformStatus
from setup_tool.lock.spec import EnvSpec, load_spec

__all__ = [
    "CheckResult",
    "EnvSpec",
    "LockProgress",
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
