"""Locking: ``envs/base.yml`` + ``envs/<variant>.yml`` → ``envs/locks/<variant>.conda-lock.yml``.

The Python API that ``setup-tool lock``, ``install`` and ``env`` share. Nothing here imports
py-rattler or conda-lock until a function needs them, and nothing here prints: results are
frozen dataclasses (``results.py``), progress goes to a ``LockProgress`` (``progress.py``) that
the CLI renders.

``load_spec(root, variant, *, cuda=None) -> EnvSpec``
    Read and validate the variant's spec files (``SpecError`` with file and line otherwise).
    ``EnvSpec.platforms`` and ``EnvSpec.virtual_packages[platform]`` say what a lock targets.

``lock_variants(root, variants, *, platforms=None, channels=None, cuda=None, environ=None,
cache_dir=None, progress=None, timeout_s=600, pip_indexes=None, torch_from=None)
-> tuple[LockResult, ...]``
    Solve every platform of each variant with py-rattler (that platform's virtual packages, never
    this machine's), then its ``- pip:`` section with uv, and write conda-lock files; nothing is
    written unless every solve succeeds. ``lock_variant(root, variant, **same)`` does one.
    Raises ``SpecError``/``UsageError`` (exit 2), ``ChannelUnreachable`` or ``SolveError``
    (exit 1). ``progress`` receives ``locking(variant, platforms, channels)``,
    ``solved(variant, PlatformLock)``, ``locking_pip(variant, platforms, indexes)`` and
    ``pip_locked(variant, platform, packages, seconds)`` events.

``check_lock(root, variant, *, platforms=None, channels=None, cuda=None, environ=None,
pip_indexes=None, torch_from=None) -> CheckResult``
    No solve, no network: ``CheckResult.up_to_date``, ``.stale_platforms`` and ``.refresh`` (the
    command that relocks what is stale). ``check_locks(root, variants, **same)`` checks several,
    like ``lock_variants``. ``setup-tool lock --check`` exits 4 when one is not up to date.

Sources, for ``lock`` and ``check`` alike (``metadata.py`` says what a lock records):

- channels: the ``channels`` argument, then ``SETUP_TOOL_CHANNEL``, then the channels the
  existing lock records if they were an override, then the spec (conda-forge);
- pip indexes: ``pip_indexes``, then ``SETUP_TOOL_PIP_INDEX_URL``, then the lock's recorded
  override, then the spec's ``pip-repositories`` and PyPI;
- PyTorch: ``torch_from`` (``"conda-forge"`` or ``"wheels"``), then what the lock records,
  then conda-forge.

So ``env`` checks and relocks a lock from the sources it was made from without being told.
The lockfile path is ``setup_tool.paths.lockfile_path(root, variant)``.

Modules: ``spec.py`` (the envs/ files), ``channels.py`` (which channels, are they reachable),
``plan.py`` (what one run works on), ``solve.py`` (py-rattler), ``condalock.py`` (conda-lock's
parser, hash, models and writer), ``lockfile.py`` (a lockfile's bytes, the atomic write),
``metadata.py`` (what a lock records about its sources), ``locking.py`` (``lock_variants``),
``checking.py`` (``check_lock``); for pip sections ``pip_indexes.py`` (which indexes),
``pip_target.py`` (the target platform as pip sees it), ``pypi_names.py`` (what conda already
provides), ``uv.py`` (one uv solve), ``wheel_metadata.py`` (a wheel's dependencies),
``pip_section.py`` (all of it per platform); ``torch_source.py`` (``--torch-from``).
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
