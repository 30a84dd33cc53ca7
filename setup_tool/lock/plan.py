"""What one lock or check works on: each variant's spec, channels and platforms, and the
``setup-tool lock`` commands that reproduce it.

``make_plans`` validates the flags (platforms, ``--cuda``) and loads every requested variant's
spec before anything is solved, so a typo fails fast and nothing is half done.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.errors import UsageError
from setup_tool.lock import condalock, pypi_names
from setup_tool.lock.channels import Channels, resolve_channels
from setup_tool.lock.metadata import read_recorded
from setup_tool.lock.pip_indexes import (
    PipIndexes,
    override_indexes,
    resolve_pip_indexes,
    spec_indexes,
)
from setup_tool.lock.spec import EnvSpec, load_spec
from setup_tool.lock.torch_source import CONDA_FORGE, PYTORCH_WHEELS, WHEELS, with_torch_wheels
from setup_tool.lock.torch_source import INDEX_ENV_VAR as TORCH_INDEX_ENV_VAR
from setup_tool.paths import cache_dir, lockfile_path, shown_path
from setup_tool.variants import SUPPORTED_SUBDIRS, Variant


@dataclass(frozen=True)
class LockPlan:
    """One variant to lock or check: its spec, the channels and conda-lock's parse of it."""

    spec: EnvSpec
    channels: Channels
    lock_spec: Any  # conda-lock's LockSpecification
    platforms: tuple[str, ...]  # the ones to solve or check
    cuda_flag: str | None  # --cuda as given (for the commands printed back)
    pip_indexes: PipIndexes | None = None  # None: no pip section on any platform
    spec_pip_repositories: tuple[str, ...] = ()  # the spec's own, as conda-lock parsed them
    torch_from: str = CONDA_FORGE  # where PyTorch comes from (torch_source.py)
    recorded_torch_from: str | None = None  # what the existing lockfile says, if anything


@dataclass(frozen=True)
class LockOptions:
    """What the caller asked for (flags), shared by every variant of one run."""

    platforms: Sequence[str] | None = None
    channels: Sequence[str] | None = None
    pip_indexes: Sequence[str] | None = None
    cuda: str | None = None
    torch_from: str | None = None


def require_cuda_variant(cuda: str | None, variants: Sequence[Variant], verb: str) -> None:
    """``--cuda`` makes sense only when the cuda variant is among ``variants``."""
    if cuda is not None and Variant.cuda not in variants:
        only = ", ".join(v.value for v in variants)
        raise UsageError(
            f"--cuda applies to the cuda variant only, not {only}",
            f"drop --cuda, or {verb} with --variant cuda (or all)",
        )


def make_plans(
    root: Path,
    variants: Sequence[Variant],
    options: LockOptions,
    environ: Mapping[str, str],
) -> list[LockPlan]:
    """One plan per variant that has any of ``options.platforms`` (all of its own when None)."""
    for platform in options.platforms or ():
        if platform not in SUPPORTED_SUBDIRS:
            raise UsageError(
                f"unknown platform {platform!r} (valid: {', '.join(SUPPORTED_SUBDIRS)})",
                "pass --platform once per platform",
            )
    override_indexes(options.pip_indexes, environ)  # a bad one is refused, used or not
    cache = cache_dir(environ)
    plans = [
        plan
        for variant in variants
        if (plan := _plan(root, variant, options, environ, cache, single=len(variants) == 1))
    ]
    if not plans:
        raise UsageError(
            f"no variant among {', '.join(v.value for v in variants)} is locked for "
            f"{', '.join(options.platforms or ())}",
            "see the platforms listed in envs/cuda.yml, envs/mps.yml and envs/cpu.yml",
        )
    return plans


def _plan(
    root: Path,
    variant: Variant,
    options: LockOptions,
    environ: Mapping[str, str],
    cache: Path,
    *,
    single: bool,
) -> LockPlan | None:
    variant_cuda = options.cuda if variant is Variant.cuda else None
    spec = load_spec(root, variant, cuda=variant_cuda)
    selected = _selected_platforms(spec, options.platforms, single=single)
    if not selected:
        return None
    path = lockfile_path(root, variant)
    recorded = read_recorded(path, shown_path(path, root))
    chosen = resolve_channels(
        options.channels, spec.channels, "envs/base.yml", environ, recorded.channels
    )
    # Without an override, conda-lock reads the files' channels itself (same hash as its own).
    # Its parser reads the name table only for a pip section: only then is it written.
    mapping = pypi_names.mapping_file(cache) if spec.pip else None
    lock_spec = condalock.lock_specification(
        spec, chosen.urls if chosen.overridden else None, mapping
    )
    torch_from = options.torch_from or recorded.torch_from or CONDA_FORGE
    if torch_from == WHEELS:
        base = environ.get(TORCH_INDEX_ENV_VAR, "").strip() or PYTORCH_WHEELS
        lock_spec = with_torch_wheels(lock_spec, variant, spec.cuda, base)
    indexes = None
    repositories = tuple(r.url for r in lock_spec.pip_repositories)
    if any(d.manager == "pip" for deps in lock_spec.dependencies.values() for d in deps):
        spec_urls = spec_indexes(repositories, lock_spec.allow_pypi_requests)
        indexes = resolve_pip_indexes(options.pip_indexes, spec_urls, environ, recorded.pip_indexes)
        if indexes.overridden:  # hashed like conda-lock hashes pip-repositories
            lock_spec = condalock.with_pip_repositories(lock_spec, indexes.urls)
    return LockPlan(
        spec,
        chosen,
        lock_spec,
        selected,
        variant_cuda,
        indexes,
        repositories,
        torch_from,
        recorded.torch_from,
    )


def _selected_platforms(
    spec: EnvSpec, platforms: Sequence[str] | None, *, single: bool
) -> tuple[str, ...]:
    """The spec's platforms among ``platforms``; naming one the only variant lacks is an error."""
    if platforms and single:
        for platform in platforms:
            if platform not in spec.platforms:
                variant = spec.variant.value
                raise UsageError(
                    f"the {variant} variant is not locked for {platform} "
                    f"(its platforms: {', '.join(spec.platforms)})",
                    f"drop --platform {platform}, or add it to envs/{variant}.yml",
                )
    return tuple(p for p in spec.platforms if platforms is None or p in platforms)


def _flags(
    channels: Channels | None,
    cuda: str | None,
    pip_indexes: PipIndexes | None,
    torch_from: str | None = None,
) -> list[str]:
    flags = []
    if torch_from == WHEELS:
        flags += ["--torch-from", WHEELS]
    if channels is not None and channels.overridden:
        for url in channels.urls:
            flags += ["--channel", url]
    if pip_indexes is not None and pip_indexes.overridden:
        for url in pip_indexes.urls:
            flags += ["--pip-index-url", url]
    if cuda:
        flags += ["--cuda", cuda]
    return flags


def refresh_command(
    variant: Variant,
    platforms: Sequence[str] | None,
    channels: Channels | None = None,
    cuda: str | None = None,
    pip_indexes: PipIndexes | None = None,
    torch_from: str | None = None,
) -> str:
    """The ``setup-tool lock`` command that relocks ``variant`` (only ``platforms`` if given)."""
    argv = ["setup-tool", "lock", "--variant", variant.value]
    for platform in platforms or ():
        argv += ["--platform", platform]
    return shlex.join(argv + _flags(channels, cuda, pip_indexes, torch_from))


def refresh_for(plan: LockPlan, platforms: Sequence[str] | None = None) -> str:
    """``refresh_command`` with the sources and options of ``plan``."""
    return refresh_command(
        plan.spec.variant,
        platforms,
        plan.channels,
        plan.cuda_flag,
        plan.pip_indexes,
        plan.torch_from,
    )


def check_for(plan: LockPlan) -> str:
    """The ``setup-tool lock --check`` command for a lock made as ``plan`` says."""
    argv = ["setup-tool", "lock", "--variant", plan.spec.variant.value, "--check"]
    return shlex.join(
        argv + _flags(plan.channels, plan.cuda_flag, plan.pip_indexes, plan.torch_from)
    )
