"""Shared by the pip-section lock tests: a channel with conda-forge's ``pip``, and readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from channel import LocalChannel, PackageSpec

# conda-forge's noarch `pip`, which conda-lock adds to a spec with a pip section
# (conda_lock/src_parser/environment_yaml.py); the test channel does not have it.
PIP_PACKAGE = PackageSpec(
    "pip",
    "25.3",
    "pyh145f28c_0",
    0,
    "noarch",
    depends=("python >=3.9",),
    noarch="python",
    files=(("site-packages/pip/__init__.py", '__version__ = "25.3"\n'),),
    fmt=".tar.bz2",
)


def channel_with_pip(local_channel: LocalChannel, folder: Path) -> str:
    """A copy of the test channel in ``folder``, plus ``pip``; its URL."""
    return local_channel.copy_to(folder / "channel").add([PIP_PACKAGE]).url


def parse(path: Path) -> Any:
    from conda_lock.lockfile import parse_conda_lock_file

    return parse_conda_lock_file(path)


def pip_entries(lock: Any, platform: str) -> dict[str, Any]:
    """The lock's ``manager: pip`` entries for ``platform``, by name."""
    return {p.name: p for p in lock.package if p.platform == platform and p.manager == "pip"}
