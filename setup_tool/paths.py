"""Where setup-tool reads and writes: the project tree, environment prefixes, the package cache.

The project root is the directory holding ``envs/`` (found upward from the working directory,
so the CLI works from any sub-folder), overridable with ``SETUP_TOOL_PROJECT``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from setup_tool.variants import Variant

ENVS_DIR = "envs"
LOCKS_DIR = "envs/locks"
PREFIXES_DIR = ".envs"
RESULTS_DIR = "results"


def project_root(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The nearest directory at or above ``start`` that has an ``envs/`` folder, else ``start``."""
    environ = os.environ if environ is None else environ
    if environ.get("SETUP_TOOL_PROJECT"):
        return Path(environ["SETUP_TOOL_PROJECT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ENVS_DIR).is_dir():
            return candidate
    return here


def spec_paths(root: Path, variant: Variant) -> tuple[Path, Path]:
    """``envs/base.yml`` and the variant's overlay ``envs/<variant>.yml``, in merge order."""
    return root / ENVS_DIR / "base.yml", root / ENVS_DIR / f"{variant.value}.yml"


def lockfile_path(root: Path, variant: Variant) -> Path:
    """``envs/locks/<variant>.conda-lock.yml``: one conda-lock file per variant."""
    return root / LOCKS_DIR / f"{variant.value}.conda-lock.yml"


def default_prefix(root: Path, variant: Variant) -> Path:
    """``.envs/<variant>``: where ``setup-tool install`` puts a variant's environment."""
    return root / PREFIXES_DIR / variant.value


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The package cache: ``SETUP_TOOL_CACHE`` or the user cache dir (e.g. ~/.cache/setup-tool)."""
    environ = os.environ if environ is None else environ
    if environ.get("SETUP_TOOL_CACHE"):
        return Path(environ["SETUP_TOOL_CACHE"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("setup-tool", appauthor=False))


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to the project root when it is inside it (for messages), else as is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
