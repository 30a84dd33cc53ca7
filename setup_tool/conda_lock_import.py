"""Importing conda-lock's lockfile models without importing conda-lock's command line.

``import conda_lock.lockfile`` first runs ``conda_lock/__init__.py``, which imports
``conda_lock.conda_lock``: the whole CLI, its conda and PyPI solvers and a vendored poetry.
Reading a lockfile needs none of it, and on a loaded 2-core machine it was over a second of
every ``install`` and ``--dry-run`` (``docs/PERFORMANCE.md``). ``without_cli()`` registers the
``conda_lock`` package in ``sys.modules`` without running its ``__init__``, so submodules load
on their own; the two names that ``__init__`` defines (``main``, ``__version__``) are still
there, loaded when first asked for. Where conda-lock is imported already, nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def without_cli() -> None:
    """Make ``import conda_lock.<submodule>`` load only that submodule (and what it imports)."""
    if "conda_lock" in sys.modules:
        return
    spec = importlib.util.find_spec("conda_lock")
    if spec is None or spec.loader is None:
        return  # not installed: the import that follows says so
    package = importlib.util.module_from_spec(spec)  # created, not executed

    def missing(name: str) -> Any:  # PEP 562: what conda_lock/__init__.py would define
        if name == "main":
            from conda_lock.conda_lock import main

            return main
        if name == "__version__":
            from importlib.metadata import distribution

            return distribution("conda_lock").version
        raise AttributeError(f"module 'conda_lock' has no attribute {name!r}")

    package.__getattr__ = missing  # type: ignore[method-assign]
    sys.modules["conda_lock"] = package
