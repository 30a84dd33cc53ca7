"""``check_lock``: is a variant's lockfile up to date with its spec? No solve, no network.

A platform is current when the content hash conda-lock computes for the spec (with the same
channels and virtual packages as ``lock``) is one the lockfile records for it; conda-lock's
older hash forms count too (``backwards_compatible_content_hashes``). The channels are chosen as
for ``lock``: a lock made from a mirror is checked against that mirror unless ``--channel`` or
SETUP_TOOL_CHANNEL say otherwise. When they do, and only the channels differ, the platform's
state is ``channels`` (not ``stale``), so the message can say "locked from X; checking
against Y".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from setup_tool.lock import condalock
from setup_tool.lock.metadata import CUSTOM_PIP_INDEXES, CUSTOM_PIP_INDEXES_FROM
from setup_tool.lock.plan import (
    LockOptions,
    LockPlan,
    make_plans,
    refresh_for,
    require_cuda_variant,
)
from setup_tool.lock.results import CheckResult, PlatformStatus
from setup_tool.lock.torch_source import validate as validate_torch_from
from setup_tool.paths import lockfile_path
from setup_tool.variants import Variant


def check_locks(
    root: Path,
    variants: Sequence[Variant],
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
    pip_indexes: Sequence[str] | None = None,
    torch_from: str | None = None,
) -> tuple[CheckResult, ...]:
    """``check_lock`` for each variant that has any of ``platforms`` (all when None); the
    arguments mean what they mean for ``lock_variants``."""
    environ = os.environ if environ is None else environ
    require_cuda_variant(cuda, variants, "check")
    validate_torch_from(torch_from)
    options = LockOptions(platforms, channels, pip_indexes, cuda, torch_from)
    plans = make_plans(root, variants, options, environ)
    return tuple(_check(root, plan, filtered=platforms is not None) for plan in plans)


def check_lock(
    root: Path,
    variant: Variant,
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
    pip_indexes: Sequence[str] | None = None,
    torch_from: str | None = None,
) -> CheckResult:
    """Whether ``envs/locks/<variant>.conda-lock.yml`` matches the spec, per platform."""
    return check_locks(
        root,
        [variant],
        platforms=platforms,
        channels=channels,
        cuda=cuda,
        environ=environ,
        pip_indexes=pip_indexes,
        torch_from=torch_from,
    )[0]


def _check(root: Path, plan: LockPlan, *, filtered: bool) -> CheckResult:
    path = lockfile_path(root, plan.spec.variant)
    if not path.exists():
        return _result(plan, path, dict.fromkeys(plan.platforms, "missing"), "missing")
    try:
        lock = condalock.read_lockfile(path)
    except Exception as exc:
        return _result(plan, path, dict.fromkeys(plan.platforms, "stale"), f"unreadable: {exc}")
    current = condalock.current_hashes(plan.lock_spec, plan.spec.virtual_packages)
    locked = {p.platform for p in lock.package}
    states: dict[str, str] = {}
    for platform in plan.platforms:
        if platform not in lock.metadata.platforms or platform not in locked:
            states[platform] = "missing"
        elif lock.metadata.content_hash.get(platform) not in current[platform]:
            states[platform] = "stale"
        else:
            states[platform] = "current"
    if plan.recorded_torch_from and plan.recorded_torch_from != plan.torch_from:
        for platform, state in states.items():
            if state == "stale":
                states[platform] = "torch"
    locked_channels = tuple(c.url for c in lock.metadata.channels)
    custom = lock.metadata.custom_metadata or {}
    locked_indexes = tuple(str(custom.get(CUSTOM_PIP_INDEXES, "")).split())
    _mark_other_sources(plan, lock, locked_channels, locked_indexes, states)
    if not filtered:
        for platform in lock.metadata.platforms:
            if platform not in plan.spec.platforms:
                states[platform] = "extra"
    return _result(
        plan, path, states, locked_channels=locked_channels, locked_indexes=locked_indexes
    )


def _mark_other_sources(
    plan: LockPlan,
    lock: Any,
    locked_channels: tuple[str, ...],
    locked_indexes: tuple[str, ...],
    states: dict[str, str],
) -> None:
    """A stale platform whose hash matches the spec with the lock's own channels (and pip
    indexes) is ``channels``: the spec is unchanged, the lock was made from other sources."""
    if "stale" not in states.values():
        return
    other = plan.lock_spec
    if locked_channels and list(locked_channels) != [c.url for c in other.channels]:
        other = condalock.with_channels(other, locked_channels)
    custom = lock.metadata.custom_metadata or {}
    pip = plan.pip_indexes
    if pip is not None and locked_indexes and locked_indexes != pip.urls:
        if custom.get(CUSTOM_PIP_INDEXES_FROM) == "override":
            other = condalock.with_pip_repositories(other, locked_indexes)
        else:  # locked from the spec's indexes: the spec's pip-repositories, as parsed
            other = condalock.with_pip_repositories(other, plan.spec_pip_repositories)
    if other is plan.lock_spec:
        return
    hashes = condalock.current_hashes(other, plan.spec.virtual_packages)
    for platform, state in states.items():
        if state == "stale" and lock.metadata.content_hash.get(platform) in hashes[platform]:
            states[platform] = "channels"


def _result(
    plan: LockPlan,
    path: Path,
    states: dict[str, str],
    problem: str | None = None,
    *,
    locked_channels: tuple[str, ...] = (),
    locked_indexes: tuple[str, ...] = (),
) -> CheckResult:
    """The result, with the refresh command: only the stale platforms when that is enough."""
    stale = [p for p, s in states.items() if s != "current"]
    partial = (
        stale
        and len(stale) < len(plan.spec.platforms)
        and "extra" not in states.values()
        and problem is None
    )
    refresh = refresh_for(plan, stale if partial else None)
    return CheckResult(
        plan.spec.variant,
        path,
        tuple(PlatformStatus(p, s) for p, s in states.items()),
        refresh,
        problem,
        channels=plan.channels,
        locked_channels=locked_channels,
        pip_indexes=plan.pip_indexes,
        locked_pip_indexes=locked_indexes,
        torch_from=plan.torch_from,
        locked_torch_from=plan.recorded_torch_from,
    )
