"""Lock drift: do the packages installed in a prefix still match the conda-lock file?

Installed packages are the records in ``<prefix>/conda-meta/*.json`` (name, version, build),
which py-rattler's installer writes as conda does. The lock is read with conda-lock's own
parser (``conda_lock.lockfile.parse_conda_lock_file``), imported only here and only when there
is a lock to read, so the doctor runs where conda-lock is not installed (a GPU box with just
torch) and skips this check with a note.

Which lock: the one ``setup-tool install`` recorded in the prefix's state file
(``conda-meta/setup-tool.state``: lockfile, platform, categories), else
``envs/locks/<variant>.conda-lock.yml`` for a prefix named after a variant (``.envs/cuda``, made
some other way, e.g. ``conda-lock install``). Anything else is "not a setup-tool environment".

Packages the lock marks for pip are compared with the ``site-packages/*.dist-info`` that no
conda package owns (name and version; ``setup_tool.install.sitepackages``), and left out only
when the prefix has no site-packages to look in; locked packages outside the installed
categories (``main`` unless the state file says
otherwise) only count when they are installed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from setup_tool.paths import lockfile_path
from setup_tool.variants import VARIANT_NAMES, Variant

DEFAULT_CATEGORIES = frozenset({"main"})

DriftState = Literal["skipped", "clean", "drifted", "unreadable"]


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    build: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.name} {self.version} {self.build}"
            if self.build
            else f"{self.name} {self.version}"
        )


@dataclass(frozen=True)
class Change:
    locked: Package
    installed: Package


@dataclass(frozen=True)
class Drift:
    """The comparison, or why there is none (``state`` "skipped" / "unreadable", ``note``)."""

    state: DriftState
    note: str = ""
    prefix: Path | None = None
    lockfile: Path | None = None
    platform: str | None = None
    compared: int = 0
    missing: tuple[Package, ...] = ()  # locked (main), not installed
    extra: tuple[Package, ...] = ()  # installed, not in the lock
    changed: tuple[Change, ...] = ()  # installed with another version or build
    pip_skipped: int = 0


def check_drift(prefix: Path | None, root: Path, fallback_platform: str | None = None) -> Drift:
    """Compare ``prefix`` with its lock; ``fallback_platform`` when conda-meta cannot tell."""
    if prefix is None:
        return Drift("skipped", "not a setup-tool environment: no conda prefix")
    meta = prefix / "conda-meta"
    if not meta.is_dir():
        return Drift("skipped", f"not a setup-tool environment: {prefix} has no conda-meta/")
    found = locate_lock(prefix, root)
    if isinstance(found, str):
        return Drift("skipped", found, prefix)
    lockfile, recorded_platform, categories = found
    installed, subdirs = read_installed(meta)
    platform = recorded_platform or _most_common(subdirs) or fallback_platform
    if platform is None:
        return Drift("unreadable", "cannot tell the environment's platform", prefix, lockfile)
    if not lockfile.is_file():
        return Drift(
            "unreadable", f"the lock {lockfile} does not exist", prefix, lockfile, platform
        )
    entries = _lock_entries(lockfile, platform, prefix)
    if isinstance(entries, Drift):
        return entries
    conda = [p for p in entries if p.manager == "conda"]
    locked = {p.name: Package(p.name, p.version, p.build) for p in conda}
    required = {p.name for p in conda if p.categories & categories}
    pip = [p for p in entries if p.manager == "pip"]
    pip_installed = _pip_installed(prefix) if pip else {}
    if pip_installed is not None:
        # Keyed apart from conda's: a lock may have a conda and a pip package of one name.
        locked.update({_pip_key(p.name): Package(p.name, p.version) for p in pip})
        required.update(_pip_key(p.name) for p in pip if p.categories & categories)
        installed = {**installed, **pip_installed}
    return _compare(
        locked=locked,
        required=required,
        installed=installed,
        prefix=prefix,
        lockfile=lockfile,
        platform=platform,
        pip_skipped=len(pip) if pip_installed is None else 0,
    )


def _lock_entries(lockfile: Path, platform: str, prefix: Path) -> list[Any] | Drift:
    """The lock's entries for ``platform``, or why they cannot be read."""
    try:
        from conda_lock.lockfile import parse_conda_lock_file
    except ImportError:
        return Drift(
            "skipped",
            "conda-lock is not installed beside setup-tool, so the lock cannot be read",
            prefix,
            lockfile,
            platform,
        )
    try:
        lock = parse_conda_lock_file(lockfile)
    except Exception as exc:  # pydantic / YAML errors: the file is not a conda-lock file
        return Drift(
            "unreadable", f"{lockfile} is not a conda-lock file: {exc}", prefix, lockfile, platform
        )
    entries = [p for p in lock.package if p.platform == platform]
    if not entries:
        return Drift(
            "unreadable",
            f"{lockfile.name} has no packages for {platform} (it locks "
            f"{', '.join(lock.metadata.platforms)})",
            prefix,
            lockfile,
            platform,
        )
    return entries


def _pip_key(name: str) -> str:
    from setup_tool.install.sitepackages import canonical

    return f"pip:{canonical(name)}"


def _pip_installed(prefix: Path) -> dict[str, Package] | None:
    """What pip-style installs put in site-packages (no conda package owns it), or None when
    the prefix has no site-packages to look in."""
    from setup_tool.install.prefix import read_state
    from setup_tool.install.sitepackages import find_site_packages, pip_installed

    recorded = (read_state(prefix) or {}).get("site_packages")
    site = prefix / recorded if recorded else find_site_packages(prefix)
    if site is None or not site.is_dir():
        return None
    return {
        _pip_key(dist.name): Package(dist.name, dist.version)
        for dist in pip_installed(prefix, site).values()
    }


def locate_lock(prefix: Path, root: Path) -> tuple[Path, str | None, frozenset[str]] | str:
    """(lockfile, platform, categories) for ``prefix``, or a note saying why there is none."""
    # The installer's own module; it needs only the standard library.
    from setup_tool.install.prefix import read_state, state_path

    state = read_state(prefix)
    if state is not None:
        try:
            lockfile = Path(state["lockfile"])
            categories = frozenset(state.get("categories") or DEFAULT_CATEGORIES)
        except (KeyError, TypeError) as exc:
            return f"{state_path(prefix)} is unreadable ({exc}); reinstall: `setup-tool install`"
        lockfile = lockfile if lockfile.is_absolute() else root / lockfile
        return lockfile, state.get("platform"), categories
    if prefix.name in VARIANT_NAMES:
        return lockfile_path(root, Variant(prefix.name)), None, DEFAULT_CATEGORIES
    return f"not a setup-tool environment: no lock is recorded for {prefix}"


def read_installed(meta: Path) -> tuple[dict[str, Package], list[str]]:
    """Installed packages by name, and the subdir of each non-noarch one."""
    installed: dict[str, Package] = {}
    subdirs: list[str] = []
    for path in sorted(meta.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        # Only package records: conda-meta holds other files too (history, setup-tool.state).
        if not isinstance(record, Mapping) or not {"name", "version", "build"} <= record.keys():
            continue
        installed[record["name"]] = Package(record["name"], record["version"], record["build"])
        if record.get("subdir") and record["subdir"] != "noarch":
            subdirs.append(record["subdir"])
    return installed, subdirs


def _compare(
    *,
    locked: Mapping[str, Package],
    required: set[str],
    installed: Mapping[str, Package],
    prefix: Path,
    lockfile: Path,
    platform: str,
    pip_skipped: int,
) -> Drift:
    missing = tuple(sorted(locked[n] for n in required - installed.keys()))
    extra = tuple(sorted(installed[n] for n in installed.keys() - locked.keys()))
    changed = tuple(
        Change(locked[n], installed[n])
        for n in sorted(locked.keys() & installed.keys())
        if not _same(locked[n], installed[n])
    )
    state: DriftState = "drifted" if missing or extra or changed else "clean"
    return Drift(
        state,
        "",
        prefix,
        lockfile,
        platform,
        compared=len(locked),
        missing=missing,
        extra=extra,
        changed=changed,
        pip_skipped=pip_skipped,
    )


def _same(locked: Package, installed: Package) -> bool:
    # A lock written without build strings pins the version only.
    return locked.version == installed.version and locked.build in (None, installed.build)


def _most_common(values: list[str]) -> str | None:
    return Counter(values).most_common(1)[0][0] if values else None
