"""Reading one platform of a lockfile: the shared types, and a dispatch by format.

Two formats, told apart by content (as conda-lock's own ``_detect_lockfile_kind`` does):

- a file with an ``@EXPLICIT`` line is an explicit lockfile (``conda list --explicit --md5``,
  ``conda-lock render --kind explicit``, conda-lock's ``conda-<platform>.lock``), read by
  ``explicit.py``;
- anything else is a conda-lock file, read here with conda-lock's own models. Any conda-lock
  file works (ours or one conda-lock wrote for another project): the ``version: 1`` format is
  converted, and categories are applied as conda-lock applies them: the packages in any of
  the categories asked for (the CLI always asks for ``main``, and adds ``--category`` ones,
  like ``conda-lock install --dev``). Files of conda-lock 1.0 (2022) that hold a leaked
  virtual package (``__glibc`` with a ``file:///var/folders/...`` URL, no hash, no
  ``optional``) are read with that entry skipped and a warning: a virtual package describes
  the machine and is never installed.
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
_MD5 = re.compile(r"[0-9a-f]{32}")

# Lockfile formats (``LockedPlatform.source_format``).
CONDA_LOCK = "conda-lock"
EXPLICIT = "explicit"


@dataclass(frozen=True)
class LockedPackage:
    """One conda package of a lock, for one platform."""

    name: str
    version: str
    build: str
    url: str
    sha256: str  # "" when the lock records only an md5 (explicit lockfiles) or no hash at all
    md5: str
    platform: str  # the lock's platform (also for noarch packages)
    dependencies: tuple[tuple[str, str], ...] = ()

    @property
    def hash_kind(self) -> str | None:
        """How this package is verified: "sha256", "md5" (when that is all the lock has), or
        None for an unverified package (only with ``--allow-unverified``)."""
        return "sha256" if self.sha256 else ("md5" if self.md5 else None)

    @property
    def expected_hash(self) -> str:
        return self.sha256 or self.md5

    @property
    def cache_key(self) -> str:
        """The cache directory of its archive: the content hash, so channels never collide."""
        if self.sha256:
            return self.sha256
        if self.md5:
            return f"md5-{self.md5}"
        return "unverified-" + hashlib.sha256(self.url.encode()).hexdigest()

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
    source_format: str = CONDA_LOCK  # CONDA_LOCK or EXPLICIT
    warnings: tuple[str, ...] = ()  # what was read leniently (skipped entries), for the user
    # The `manager: pip` entries, installed after the conda packages (see wheels.py).
    wheels: tuple[LockedWheel, ...] = ()

    @property
    def has_dependencies(self) -> bool:
        """Whether the file records each package's dependencies (explicit lockfiles do not)."""
        return self.source_format != EXPLICIT

    @property
    def packages_hash(self) -> str:
        """A digest of exactly what gets installed: equal digests, identical environments."""
        digest = hashlib.sha256()
        for package in sorted(self.packages, key=lambda p: p.name):
            digest.update(f"{package.name} {package.url} {package.expected_hash}\n".encode())
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
    path: Path,
    platform: str,
    categories: Iterable[str] = ("main",),
    *,
    refresh_hint: str = "",
    allow_unverified: bool = False,
) -> LockedPlatform:
    """The packages of ``platform`` in the lock at ``path``, or an error that says what to do.

    ``allow_unverified`` admits packages without any hash (explicit lockfiles only; a
    conda-lock file always records sha256).
    """
    try:
        data = path.read_bytes()
    except OSError:
        data = None  # _parse says what is wrong with it
    if data is not None and is_explicit(data):
        from setup_tool.install.explicit import read_explicit

        return read_explicit(path, data, platform, categories, allow_unverified=allow_unverified)
    return _read_conda_lock(path, data, platform, set(categories), refresh_hint)


def _read_conda_lock(
    path: Path, data: bytes | None, platform: str, wanted: set[str], refresh_hint: str
) -> LockedPlatform:
    """One platform of a conda-lock file (conda-lock's models; leaked entries skipped)."""
    file_sha256 = hashlib.sha256(data).hexdigest() if data is not None else None
    lockfile, lenient = _parse(path, refresh_hint)
    platforms = tuple(sorted(lockfile.metadata.platforms))
    if platform not in platforms:
        raise _no_platform(path, platform, platforms, own_lock=bool(refresh_hint))
    _refuse_unknown_categories(path, platform, wanted, lockfile.package)
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
    # Source entries among them are refused by install after the machine check, so that a
    # lock that cannot run here is refused for that (its CUDA, its glibc) first.
    wheels = read_wheels(path, platform, chosen, on_platform, refresh_hint)
    packages = tuple(_locked_package(path, dep) for dep in chosen if dep.manager == "conda")
    warnings = [message for where, message in lenient if where == platform]
    md5_only = sorted(p.name for p in packages if p.hash_kind == "md5")
    if md5_only:
        warnings.append(md5_only_warning(md5_only))
    return LockedPlatform(
        path=path,
        platform=platform,
        packages=packages,
        platforms_in_lock=platforms,
        content_hash=lockfile.metadata.content_hash.get(platform),
        file_sha256=file_sha256,
        warnings=tuple(warnings),
        wheels=wheels,
    )


def _no_platform(
    path: Path, platform: str, platforms: tuple[str, ...], *, own_lock: bool
) -> LockfileMismatch:
    fix = _platform_hint(platform, own_lock=own_lock)
    return LockfileMismatch(
        f"{path} has no packages for this machine's platform {platform} "
        f"(it has: {', '.join(platforms) or 'none'})",
        fix,
        reasons=(
            {"kind": "platform", "reason": f"the lock has no packages for {platform}", "fix": fix},
        ),
    )


def md5_only_warning(names: list[str]) -> str:
    """The warning for packages the lock gives only an md5 for (explicit lockfiles)."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"{len(names)} package(s) are verified by md5 only, the only hash the lock records "
        f"for them ({shown}); md5 detects corruption but is weaker than sha256 against "
        f"deliberate tampering"
    )


def _platform_hint(platform: str, *, own_lock: bool) -> str:
    if own_lock:
        return (
            f"add {platform} to the variant's platforms and relock, or use a variant made for "
            f"this machine (`setup-tool detect` says which)"
        )
    return (
        f"install it on a machine of one of those platforms, or lock its environment for "
        f"{platform} (`conda-lock lock -p {platform}`)"
    )


def is_explicit(data: bytes) -> bool:
    """Whether a lockfile's bytes are an explicit lockfile: a line that is ``@EXPLICIT``."""
    return any(line.strip() == b"@EXPLICIT" for line in data.splitlines())


def _parse(path: Path, refresh_hint: str) -> tuple[Any, list[tuple[str, str]]]:
    """conda-lock's model of the file, and warnings for the entries read leniently."""
    from pydantic import ValidationError
    from yaml import YAMLError

    hint = refresh_hint or (
        f"restore it from git (`git checkout -- {path}`), or regenerate it with the tool that "
        f"made it (`conda-lock lock`)"
    )
    if not path.exists():
        raise LockfileInvalid(
            f"lockfile {path} not found", refresh_hint or "check the path given to --lockfile"
        )
    if path.is_dir():
        raise UsageError(
            f"{path} is a directory, not a conda-lock file",
            "pass the lockfile itself, e.g. --lockfile DIR/conda-lock.yml",
        )
    try:
        content = _load_yaml(path)
        if not isinstance(content, dict):
            raise TypeError
        _refuse_a_spec(path, content)
        lenient = _drop_leaked_virtual_packages(content)
        return _validate(content), lenient
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LockfileInvalid(f"{path} is not valid YAML{where} (truncated?)", hint) from None
    except ValidationError as exc:
        raise LockfileInvalid(_validation_message(path, content, exc), hint) from None
    except (TypeError, AttributeError):
        # A YAML file that is empty, a list or a scalar: say that instead of conda-lock's
        # "'NoneType' object has no attribute 'pop'".
        raise LockfileInvalid(
            f"{path} is not a conda-lock file: it is empty or has no `version`, `metadata` and "
            f"`package` keys (truncated?)",
            hint,
        ) from None
    except (ValueError, KeyError) as exc:
        raise LockfileInvalid(f"{path} is not a valid conda-lock file: {exc}", hint) from None


def _refuse_a_spec(path: Path, content: dict[str, Any]) -> None:
    """An environment file (``environment.yml``, ``envs/*.yml``) is what a lock is made from."""
    if "dependencies" in content and "package" not in content:
        raise UsageError(
            f"{path} is an environment spec (it lists `dependencies`), not a lockfile",
            "lock it first, then install the lockfile: `conda-lock lock -f "
            f"{path}` (for this project's envs/*.yml: `setup-tool lock`)",
        )


def _refuse_unknown_categories(
    path: Path, platform: str, wanted: set[str], packages: Iterable[Any]
) -> None:
    """A category the lock does not have is a typo, not an empty extra: installing "nothing
    more" and recording it would hide that."""
    known = {c for dep in packages if dep.platform == platform for c in dep.categories}
    unknown = sorted(wanted - known - {"main"})  # main is always asked for; checked below
    if unknown:
        raise UsageError(
            f"{path.name} has no {'category' if len(unknown) == 1 else 'categories'} "
            f"{', '.join(map(repr, unknown))} for {platform} "
            f"(it has: {', '.join(sorted(known)) or 'none'})",
            "pass one of those to --category, or leave --category out for main only",
        )


def _load_yaml(path: Path) -> Any:
    """The file as YAML data, with libyaml's loader when PyYAML has it (4x faster on a lock of
    ~1,000 packages than the pure-Python one conda-lock's ``parse_conda_lock_file`` uses)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        return yaml.load(handle, Loader=loader)


def _validate(content: dict[str, Any]) -> Any:
    """conda-lock's own models, as ``conda_lock.lockfile.parse_conda_lock_file`` applies them."""
    from setup_tool.conda_lock_import import without_cli

    without_cli()  # the models, not conda-lock's CLI (over a second of imports)
    from conda_lock.lockfile import lockfile_v1_to_v2
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
    from conda_lock.lockfile.v2prelim.models import Lockfile

    version = content.pop("version", None)
    if version == 1:
        return lockfile_v1_to_v2(LockfileV1.model_validate(content))
    if version == 2:
        return Lockfile.model_validate(content)
    if version is None:
        raise ValueError("it has no `version` key (conda-lock files have `version: 1` or 2)")
    raise ValueError(f"its version {version!r} is not one conda-lock knows (1 or 2)")


def _drop_leaked_virtual_packages(content: dict[str, Any]) -> list[tuple[str, str]]:
    """Remove ``__glibc``-style entries from ``content["package"]``, one warning each.

    conda-lock 1.0 (2022) sometimes wrote the solver's virtual packages into the lock, with a
    temporary ``file:///`` URL, no hash and no ``optional`` key; current conda-lock rejects
    such a file. A virtual package describes the machine and is never installed (conda-lock
    itself filters them out when it renders or installs: ``filter_virtual_packages_inplace``),
    so skipping it is safe. Returns (platform, warning) pairs.
    """
    packages = content.get("package")
    if not isinstance(packages, list):
        return []
    kept, warnings = [], []
    for entry in packages:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name.startswith("__"):
            warnings.append(
                (
                    str(entry.get("platform", "")),
                    f"skipped the entry {name} {entry.get('version', '')}: a virtual package "
                    f"an old conda-lock wrote into the lock by mistake (it describes the "
                    f"machine and is never installed; a current conda-lock drops it)",
                )
            )
            continue
        kept.append(entry)
    content["package"] = kept
    return warnings


def _validation_message(path: Path, content: dict[str, Any], exc: Any) -> str:
    """The first validation error as a sentence that names the entry: not
    "package.234.optional: Field required" but which package, and which key."""
    errors = exc.errors()
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    what = f"`{location[-1]}`" if location else "a value"
    problem = "is missing" if first.get("type") == "missing" else f"is wrong: {first.get('msg')}"
    more = f" ({len(errors)} problems in all)" if len(errors) > 1 else ""
    packages = content.get("package")
    if len(location) >= 2 and location[0] == "package" and location[1].isdigit():
        index = int(location[1])
        entry = packages[index] if isinstance(packages, list) and index < len(packages) else {}
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        version = entry.get("version", "") if isinstance(entry, dict) else ""
        platform = entry.get("platform", "") if isinstance(entry, dict) else ""
        entry_text = f"the package entry {name} {version}{f' ({platform})' if platform else ''}"
        field = ".".join(location[2:])
        detail = f"its `{field}` {problem}" if field else problem
        return f"{path} is not a valid conda-lock file: {entry_text}: {detail}{more}"
    where = ".".join(location) or "the file"
    return f"{path} is not a valid conda-lock file: {where}: {what} {problem}{more}"


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
    md5 = (dep.hash.md5 or "").lower()
    if not dep.hash.sha256 and not _MD5.fullmatch(md5):
        raise LockfileInvalid(
            f"{path}: {dep.name} {dep.version} has no sha256 (nor md5), so it cannot be verified",
            "relock with a conda-lock that records sha256 (conda-lock >= 1.0 does)",
        )
    if dep.hash.sha256 and not _SHA256.fullmatch(dep.hash.sha256.lower()):
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
        sha256=(dep.hash.sha256 or "").lower(),
        md5=md5,
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
