"""What to install, where, for which machine: an ``InstallRequest`` built from a detection.

``install_request`` fills in the defaults (the variant's lockfile and ``.envs/<variant>``) and
``machine_facts`` turns a detection into what the machine check needs, honouring
``CONDA_OVERRIDE_GLIBC`` / ``CONDA_OVERRIDE_OSX`` as conda does (``CONDA_OVERRIDE_CUDA`` is
already applied by detection). Both are plain functions of their arguments, so they are
testable without the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from setup_tool.errors import UnsupportedPlatform
from setup_tool.install.compat import MachineFacts
from setup_tool.variants import Variant

if TYPE_CHECKING:
    from setup_tool.detect import Detection

GLIBC_OVERRIDE_ENV = "CONDA_OVERRIDE_GLIBC"
OSX_OVERRIDE_ENV = "CONDA_OVERRIDE_OSX"


@dataclass(frozen=True)
class InstallRequest:
    lockfile: Path
    prefix: Path
    platform: str  # this machine's conda subdir
    machine: MachineFacts
    cache_root: Path
    categories: tuple[str, ...] = ("main",)
    dry_run: bool = False
    refresh_hint: str = ""  # how to re-create the lockfile, for error hints ("" for --lockfile)
    # Where a refusal for CUDA may point instead: the project's cpu variant, when the lock is
    # the project's own ("" for a user's --lockfile, which has no such sibling).
    cpu_alternative: str = ""
    allow_unverified: bool = False  # explicit lockfiles: install packages that have no hash
    verify_cache: bool = False  # hash every cached file again, ignoring stamps (stamps.py)


def machine_facts(detection: Detection, environ: Mapping[str, str] | None = None) -> MachineFacts:
    """The facts the machine check compares a lock with, overrides applied."""
    environ = os.environ if environ is None else environ
    target, platform = detection.target, detection.platform
    driver_version = None
    if platform.nvidia is not None and target.cuda_source != "CONDA_OVERRIDE_CUDA":
        # With CONDA_OVERRIDE_CUDA the driver's own version no longer describes the CUDA used.
        driver_version = platform.nvidia.driver_version
    return MachineFacts(
        driver_cuda=target.driver_cuda,
        driver_version=driver_version,
        glibc=environ.get(GLIBC_OVERRIDE_ENV) or platform.glibc_version,
        macos=environ.get(OSX_OVERRIDE_ENV) or platform.macos_version,
    )


def _own_lock_hints(root: Path, variant: Variant) -> tuple[str, str]:
    """How to re-create the project's lock for ``variant``, and the cpu variant as the
    alternative to a cuda lock that does not fit."""
    from setup_tool.paths import ENVS_DIR

    refresh = f"create or refresh it with `setup-tool lock --variant {variant.value}`"
    if not (root / ENVS_DIR).is_dir():  # not in a project: there is nothing to lock
        refresh = (
            f"run from a setup-tool project (the folder holding {ENVS_DIR}/) or set "
            "SETUP_TOOL_PROJECT, or pass the lockfile to install with --lockfile"
        )
    cpu_alternative = ""
    if variant is Variant.cuda:
        cpu_alternative = "install the cpu variant instead (`setup-tool install --variant cpu`)"
    return refresh, cpu_alternative


def install_request(
    detection: Detection,
    *,
    lockfile: Path | None,
    prefix: Path | None,
    categories: tuple[str, ...] = ("main",),
    dry_run: bool = False,
    allow_unverified: bool = False,
    verify_cache: bool = False,
    environ: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> InstallRequest:
    """Fill in the defaults from detection: the variant's lockfile and ``.envs/<variant>``."""
    from setup_tool.paths import cache_dir, default_prefix, lockfile_path, project_root

    environ = os.environ if environ is None else environ
    target = detection.target
    root = root or project_root(environ=environ)
    if target.variant is None and (lockfile is None or prefix is None):
        raise UnsupportedPlatform(
            f"no variant supports this machine: {target.reason}",
            "pass --variant, or both --lockfile and --prefix, to install anyway",
        )
    refresh = cpu_alternative = ""
    if target.variant is not None:
        own_lock = lockfile_path(root, target.variant)
        if lockfile is None or _same_path(lockfile, own_lock):
            # Only the project's own lock may be pointed at the project's commands: a user's
            # --lockfile is not re-created by `setup-tool lock --variant ...`.
            refresh, cpu_alternative = _own_lock_hints(root, target.variant)
        lockfile = lockfile or own_lock
        prefix = prefix or default_prefix(root, target.variant)
    assert lockfile is not None and prefix is not None
    return InstallRequest(
        lockfile=lockfile,
        prefix=prefix,
        platform=target.subdir,
        machine=machine_facts(detection, environ),
        cache_root=cache_dir(environ).absolute(),
        categories=categories,
        dry_run=dry_run,
        refresh_hint=refresh,
        cpu_alternative=cpu_alternative,
        allow_unverified=allow_unverified,
        verify_cache=verify_cache,
    )


def _same_path(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)  # noqa: PTH100  (no symlink resolving)
