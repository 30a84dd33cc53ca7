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
from setup_tool.lock import condalock
from setup_tool.lock.channels import Channels, resolve_channels
from setup_tool.lock.metadata import recorded_override
from setup_tool.lock.spec import EnvSpec, load_spec
from setup_tool.paths import lockfile_path, shown_path
from setup_tool.variants import SUPPORTED_SUBDIRS, Variant


@dataclass(frozen=True)
class LockPlan:
    """One variant to lock or check: its spec, the channels and conda-lock's parse of it."""

    spec: EnvSpec
    channels: Channels
    lock_spec: Any  # conda-lock's LockSpecification
    platforms: tuple[str, ...]  # the ones to solve or check
    cuda_flag: str | None  # --cuda as given (for the commands printed back)


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
    *,
    platforms: Sequence[str] | None,
    channels: Sequence[str] | None,
    cuda: str | None,
    environ: Mapping[str, str],
) -> list[LockPlan]:
    """One plan per variant that has any of ``platforms`` (all of its own when None)."""
    for platform in platforms or ():
        if platform not in SUPPORTED_SUBDIRS:
            raise UsageError(
                f"unknown platform {platform!r} (valid: {', '.join(SUPPORTED_SUBDIRS)})",
                "pass --platform once per platform",
            )
    plans = []
    for variant in variants:
        variant_cuda = cuda if variant is Variant.cuda else None
        spec = load_spec(root, variant, cuda=variant_cuda)
        selected = _selected_platforms(spec, platforms, single=len(variants) == 1)
        if not selected:
            continue
        path = lockfile_path(root, variant)
        recorded = recorded_override(path, shown_path(path, root))
        chosen = resolve_channels(channels, spec.channels, "envs/base.yml", environ, recorded)
        # Without an override, conda-lock reads the files' channels itself (same hash as its own).
        lock_spec = condalock.lock_specification(spec, chosen.urls if chosen.overridden else None)
        plans.append(LockPlan(spec, chosen, lock_spec, selected, variant_cuda))
    if not plans:
        raise UsageError(
            f"no variant among {', '.join(v.value for v in variants)} is locked for "
            f"{', '.join(platforms or ())}",
            "see the platforms listed in envs/cuda.yml, envs/mps.yml and envs/cpu.yml",
        )
    return plans


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


def _flags(channels: Channels | None, cuda: str | None) -> list[str]:
    flags = []
    if channels is not None and channels.overridden:
        for url in channels.urls:
            flags += ["--channel", url]
    if cuda:
        flags += ["--cuda", cuda]
    return flags


def refresh_command(
    variant: Variant,
    platforms: Sequence[str] | None,
    channels: Channels | None = None,
    cuda: str | None = None,
) -> str:
    """The ``setup-tool lock`` command that relocks ``variant`` (only ``platforms`` if given)."""
    argv = ["setup-tool", "lock", "--variant", variant.value]
    for platform in platforms or ():
        argv += ["--platform", platform]
    return shlex.join(argv + _flags(channels, cuda))


def check_command(variant: Variant, channels: Channels | None, cuda: str | None) -> str:
    """The ``setup-tool lock --check`` command for a lock made with these options."""
    argv = ["setup-tool", "lock", "--variant", variant.value, "--check"]
    return shlex.join(argv + _flags(channels, cuda))
