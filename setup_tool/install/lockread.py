"""Reading one platform of a conda-lock file, with conda-lock's own parser.

Any conda-lock file works here (ours or one conda-lock wrote for another project): the
parser converts the on-disk ``version: 1`` format, and categories are applied as conda-lock
applies them: the packages in any of the categories asked for (the CLI always asks for
``main``, and adds ``--category`` ones, like ``conda-lock install --dev``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from setup_tool.errors import LockfileInvalid, LockfileMismatch, UsageError
from setup_tool.install.wheels import LockedWheel, PythonTarget, python_target, read_wheels

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LockedPackage:
    """One conda package of a lock, for one platform."""

    name: str
    version: str
    build: str
    url: str
    sha256: str
    md5: str
    platform: str  # the lock's platform (also for noarch packages)
    dependencies: tuple[tuple[str, str], ...] = ()

    @property
    def filename(self) -> str:
        return unquote(PurePosixPath(urlsplit(self.url).path).name)

    @property
    def subdir(self) -> str:
        """The channel subdir in the URL: the platform, or ``noarch``."""
        return PurePosixPath(urlsplit(self.url).path).parent.name

    @property
    def channel(self) -> str:
        """The channel URL: everything before ``/<subdir>/<file>``."""
        return self.url.rsplit("/", 2)[0]

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}={self.build}"

    def requirement(self, virtual_package: str) -> str | None:
        """The version spec this package puts on a virtual package (``__glibc``), if any."""
        for name, spec in self.dependencies:
            if name == virtual_package:
                return spec
        return None


@dataclass(frozen=True)
class LockedPlatform:
    """The packages a lock holds for one platform, and what identifies that set."""

    path: Path
    platform: str
    packages: tuple[LockedPackage, ...]
    platforms_in_lock: tuple[str, ...]
    content_hash: str | None
    # sha256 of the file's bytes, read *before* parsing: if the file is rewritten meanwhile
    # (a relock), this names the older bytes, so the no-op check re-reads it next time
    # instead of taking the new file for installed.
    file_sha256: str | None = None
    # The `manager: pip` entries, installed after the conda packages (see wheels.py).
    wheels: tuple[LockedWheel, ...] = ()

    @property
    def packages_hash(self) -> str:
        """A digest of exactly what gets installed: equal digests, identical environments."""
        digest = hashlib.sha256()
        for package in sorted(self.packages, key=lambda p: p.name):
            digest.update(f"{package.name} {package.url} {package.sha256}\n".encode())
        for wheel in sorted(self.wheels, key=lambda w: w.key):
            digest.update(f"pip {wheel.key} {wheel.url} {wheel.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def python(self) -> PythonTarget | None:
        """The environment's Python (from the conda packages), which the wheels must fit."""
        return python_target(self.packages)

    def by_name(self) -> dict[str, LockedPackage]:
        return {p.name: p for p in self.packages}


def read_locked_platform(
    path: Path, platform: str, categories: Iterable[str] = ("main",), *, refresh_hint: str = ""
) -> LockedPlatform:
    """The packages of ``platform`` in the lock at ``path``, or an error that says what to do."""
    try:
        file_sha256: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        file_sha256 = None  # _parse says what is wrong with it
    lockfile = _parse(path, refresh_hint)
    wanted = set(categories)
    platforms = tuple(sorted(lockfile.metadata.platforms))
    if platform not in platforms:
        raise LockfileMismatch(
            f"{path} has no packages for this machine's platform {platform} "
            f"(it has: {', '.join(platforms) or 'none'})",
            f"add {platform} to the variant's platforms and relock, or use a variant made for "
            f"this machine (`setup-tool detect` says which)",
        )
    chosen = [
        dep
        for dep in lockfile.package
        if dep.platform == platform and (dep.categories & wanted or not dep.categories)
    ]
    if not chosen:
        raise LockfileInvalid(
            f"{path} has no {'/'.join(sorted(wanted))} packages for {platform}",
            "check --category, or relock",
        )
    on_platform = [dep for dep in lockfile.package if dep.platform == platform]
    _check_complete(path, platform, on_platform, refresh_hint)
    wheels = read_wheels(path, platform, chosen, on_platform, refresh_hint)
    packages = tuple(_locked_package(path, dep) for dep in chosen if dep.manager == "conda")
    return LockedPlatform(
        path=path,
        platform=platform,
        packages=packages,
        platforms_in_lock=platforms,
        content_hash=lockfile.metadata.content_hash.get(platform),
        file_sha256=file_sha256,
        wheels=wheels,
    )


def _parse(path: Path, refresh_hint: str) -> Any:
    from conda_lock.lockfile import parse_conda_lock_file
    from pydantic import ValidationError
    from yaml import YAMLError

    hint = (
        refresh_hint
        or f"re-create it with `setup-tool lock`, or restore it from git: `git checkout -- {path}`"
    )
    if not path.exists():
        raise LockfileInvalid(
            f"lockfile {path} not found", refresh_hint or "create it with `setup-tool lock`"
        )
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a conda-lock file")
    try:
        return parse_conda_lock_file(path)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LockfileInvalid(f"{path} is not valid YAML{where} (truncated?)", hint) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        raise LockfileInvalid(
            f"{path} is not a valid conda-lock file: {location}: {first.get('msg')}", hint
        ) from None
    except (TypeError, AttributeError):
        # conda-lock's plain TypeErrors / AttributeErrors ("'NoneType' object has no attribute
        # 'pop'") when the YAML is empty, a list or a scalar: say that instead.
        raise LockfileInvalid(
            f"{path} is not a conda-lock file: it is empty or has no `version`, `metadata` and "
            f"`package` keys (truncated?)",
            hint,
        ) from None
    except (ValueError, KeyError) as exc:
        # conda-lock raises ValueError subclasses for a missing / unknown version.
        raise LockfileInvalid(f"{path} is not a valid conda-lock file: {exc}", hint) from None


def _check_complete(path: Path, platform: str, deps: list[Any], refresh_hint: str) -> None:
    """Every dependency of a locked conda package is locked too (virtual packages aside).

    A solver's output always is. A lockfile cut off between two packages is still valid YAML
    and a valid conda-lock file, with the packages after the cut silently missing; this is
    what tells it from a complete one (the packages sort by name, so what is cut off is
    almost always a dependency of something before it).
    """
    names = {dep.name for dep in deps}
    for dep in deps:
        if dep.manager != "conda":
            continue
        missing = sorted(n for n in dep.dependencies if n not in names and not n.startswith("__"))
        if missing:
            raise LockfileInvalid(
                f"{path} is incomplete for {platform}: {dep.name} depends on "
                f"{', '.join(missing)}, which the lock does not have (a truncated file?)",
                refresh_hint or f"restore it from git (`git checkout -- {path}`), or relock",
            )


def _locked_package(path: Path, dep: Any) -> LockedPackage:
    if not dep.hash.sha256:
        raise LockfileInvalid(
            f"{path}: {dep.name} {dep.version} has no sha256, so it cannot be verified",
            "relock with a conda-lock that records sha256 (conda-lock >= 1.0 does)",
        )
    if not _SHA256.fullmatch(dep.hash.sha256.lower()):
        # Otherwise every download of it would be reported as tampered with.
        raise LockfileInvalid(
            f"{path}: {dep.name} {dep.version} has a malformed sha256 "
            f"({dep.hash.sha256!r}: not 64 hex digits)",
            "restore the lockfile from git or relock",
        )
    return LockedPackage(
        name=dep.name,
        version=dep.version,
        build=dep.build or _build_from_url(dep.name, dep.version, dep.url),
        url=dep.url,
        sha256=dep.hash.sha256.lower(),
        md5=(dep.hash.md5 or "").lower(),
        platform=dep.platform,
        dependencies=tuple(sorted(dep.dependencies.items())),
    )


def _build_from_url(name: str, version: str, url: str) -> str:
    """The build string from a package file name ``<name>-<version>-<build>.conda``: locks
    written by conda-lock 1.x have no ``build`` field, and the machine check needs it."""
    filename = unquote(PurePosixPath(urlsplit(url).path).name)
    stem = next(
        (filename[: -len(ext)] for ext in (".conda", ".tar.bz2") if filename.endswith(ext)), ""
    )
    head = f"{name}-{version}-"
    return stem[len(head) :] if stem.startswith(head) else ""
