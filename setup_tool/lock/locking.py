"""``lock_variants``: spec → solve per platform → conda-lock file.

Every requested platform of every requested variant is solved first; files are written only
when all of them succeeded, each to a temporary file beside it that is renamed into place, so
a failed or interrupted lock never leaves a broken or half-written lockfile. A file whose
content would not change is not touched. With ``platforms`` given, only those are re-solved;
the lockfile keeps the other platforms' packages and hashes as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from setup_tool.lock import condalock
from setup_tool.lock.channels import Channels, check_reachable
from setup_tool.lock.lockfile import platform_lock, render_lock, write_if_changed
from setup_tool.lock.pip_indexes import check_reachable as check_index_reachable
from setup_tool.lock.pip_section import PipLocked, lock_pip_sections, pip_requirements
from setup_tool.lock.plan import LockOptions, LockPlan, make_plans, require_cuda_variant
from setup_tool.lock.progress import LockProgress
from setup_tool.lock.results import LockResult
from setup_tool.lock.solve import SOLVE_TIMEOUT_S, Solved, SolveRequest, solve_all
from setup_tool.lock.torch_source import validate as validate_torch_from
from setup_tool.paths import cache_dir as default_cache_dir
from setup_tool.variants import Variant


def lock_variants(
    root: Path,
    variants: Sequence[Variant],
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    progress: LockProgress | None = None,
    timeout_s: float = SOLVE_TIMEOUT_S,
    pip_indexes: Sequence[str] | None = None,
    torch_from: str | None = None,
) -> tuple[LockResult, ...]:
    """Lock each variant (all its platforms, or those of ``platforms`` it has) into
    ``envs/locks/<variant>.conda-lock.yml``; nothing is written unless every solve succeeds.

    ``channels`` replaces the spec's channels (else ``SETUP_TOOL_CHANNEL``, else the ones the
    lock records, else the spec); ``pip_indexes`` replaces the pip section's indexes the same
    way (``SETUP_TOOL_PIP_INDEX_URL``); ``cuda`` replaces the cuda variant's ``__cuda``;
    ``torch_from`` (``conda-forge`` or ``wheels``, else what the lock records, else
    conda-forge) says where PyTorch comes from. Raises ``SpecError``, ``UsageError``,
    ``ChannelUnreachable`` or ``SolveError``.
    """
    environ = os.environ if environ is None else environ
    progress = progress or LockProgress()
    require_cuda_variant(cuda, variants, "lock")
    validate_torch_from(torch_from)
    options = LockOptions(platforms, channels, pip_indexes, cuda, torch_from)
    plans = make_plans(root, variants, options, environ)
    for url in dict.fromkeys(u for plan in plans for u in plan.channels.urls):
        check_reachable([url])
    for url in dict.fromkeys(u for p in plans if p.pip_indexes for u in p.pip_indexes.urls):
        check_index_reachable([url])
    cache = cache_dir or default_cache_dir(environ)
    solved = _solve(plans, cache, progress, timeout_s)
    pip = _lock_pip(plans, solved, cache, progress)
    # Render everything before writing anything.
    rendered = [
        render_lock(
            root,
            plan,
            [s for s in solved if s.request.variant is plan.spec.variant],
            {p: locked for (v, p), locked in pip.items() if v is plan.spec.variant},
        )
        for plan in plans
    ]
    return tuple(
        LockResult(
            lock.plan.spec.variant,
            lock.path,
            lock.platforms,
            lock.plan.channels,
            lock.plan.spec.cuda,
            write_if_changed(lock.path, lock.data),
        )
        for lock in rendered
    )


def lock_variant(root: Path, variant: Variant, **options: Any) -> LockResult:
    """``lock_variants`` for one variant (same keyword options)."""
    return lock_variants(root, [variant], **options)[0]


def _solve(
    plans: Sequence[LockPlan], cache: Path, progress: LockProgress, timeout_s: float
) -> list[Solved]:
    """Every platform of every plan, one py-rattler solve per channel list."""
    requests = []
    for plan in plans:
        progress.locking(plan.spec.variant, plan.platforms, plan.channels)
        requests += [
            SolveRequest(
                plan.spec.variant,
                platform,
                condalock.match_specs(plan.lock_spec, platform),
                plan.spec.virtual_packages[platform],
            )
            for platform in plan.platforms
        ]

    def report(solved: Solved) -> None:
        progress.solved(solved.request.variant, platform_lock(solved))

    # One solve for all variants that share channels: their repodata is fetched once.
    channels_of = {plan.spec.variant: plan.channels for plan in plans}
    by_channels: dict[tuple[str, ...], list[SolveRequest]] = {}
    for request in requests:
        by_channels.setdefault(channels_of[request.variant].urls, []).append(request)
    solved: list[Solved] = []
    for group in by_channels.values():
        group_channels: Channels = channels_of[group[0].variant]
        solved += solve_all(
            group, group_channels, cache_dir=cache, timeout_s=timeout_s, on_solved=report
        )
    return solved


def _lock_pip(
    plans: Sequence[LockPlan], solved: Sequence[Solved], cache: Path, progress: LockProgress
) -> dict[tuple[Variant, str], PipLocked]:
    """The pip sections of every plan, after the conda solves they depend on."""
    for plan in plans:
        with_pip = [p for p in plan.platforms if pip_requirements(plan, p)]
        if with_pip and plan.pip_indexes is not None:
            progress.locking_pip(plan.spec.variant, with_pip, plan.pip_indexes)

    def report(locked: PipLocked) -> None:
        progress.pip_locked(locked.variant, locked.platform, len(locked.packages), locked.seconds)

    return lock_pip_sections(plans, solved, cache_dir=cache, on_locked=report)
