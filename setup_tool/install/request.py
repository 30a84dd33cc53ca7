"""From a detection to an ``InstallRequest``: the defaults ``install`` and ``env`` share.

The variant's lockfile (``envs/locks/<variant>.conda-lock.yml``), its prefix (``.envs/<variant>``)
and the machine facts the compatibility check needs, with conda's ``CONDA_OVERRIDE_GLIBC`` /
``CONDA_OVERRIDE_OSX`` applied (conda's documented overrides for ``__glibc`` and ``__osx``:
https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/manage-virtual.html).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from setup_tool.errors import UnsupportedPlatform
from setup_tool.install.compat import MachineFacts

if TYPE_CHECKING:
    from setup_tool.detect import Detection
    from setup_tool.install import InstallRequest


def machine_facts(detection: Detection, environ: Mapping[str, str]) -> MachineFacts:
    """What the install's machine check needs to know, with conda's overrides applied."""
    target, platform = detection.target, detection.platform
    return MachineFacts(
        driver_cuda=target.driver_cuda,
        driver_version=platform.nvidia.driver_version if platform.nvidia else None,
        glibc=environ.get("CONDA_OVERRIDE_GLIBC") or platform.glibc_version,
        macos=environ.get("CONDA_OVERRIDE_OSX") or platform.macos_version,
    )


def install_request(
    detection: Detection,
    *,
    lockfile: Path | None,
    prefix: Path | None,
    categories: tuple[str, ...] = ("main",),
    dry_run: bool = False,
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> InstallRequest:
    """Fill in the defaults from detection: the variant's lockfile and ``.envs/<variant>``.

    ``root`` defaults to the project root, ``environ`` to ``os.environ``. Raises
    ``UnsupportedPlatform`` when no variant fits and the lockfile or prefix is not given.
    """
    from setup_tool.install import InstallRequest
    from setup_tool.paths import cache_dir, default_prefix, lockfile_path, project_root

    environ = os.environ if environ is None else environ
    target = detection.target
    root = root or project_root(environ=environ)
    if target.variant is None and (lockfile is None or prefix is None):
        raise UnsupportedPlatform(
            f"no variant supports this machine: {target.reason}",
            "pass --variant, or both --lockfile and --prefix, to install anyway",
        )
    refresh = ""
    if target.variant is not None:
        refresh = f"create or refresh it with `setup-tool lock --variant {target.variant.value}`"
        lockfile = lockfile or lockfile_path(root, target.variant)
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
    )
