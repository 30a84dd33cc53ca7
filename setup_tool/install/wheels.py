"""The ``manager: pip`` entries of a conda-lock file: the wheels an environment gets after conda.

conda-lock writes one entry per PyPI package and platform (``name``, ``version``, ``url``,
``hash.sha256``, ``dependencies`` by PyPI name, ``category``), and its own installer runs
``pip install --no-deps`` on them after the conda packages. Here they become ``LockedWheel``s:

- only wheels are installed. An entry whose URL is a source (an sdist ``.tar.gz`` / ``.zip``,
  a ``git+https://`` checkout, a directory) would have to be *built*, which runs arbitrary code
  and gives no reproducible result; it is kept as a ``LockedWheel`` with ``is_wheel`` false,
  and the machine check (``wheelcompat``) refuses it by name, as one of its reasons;
- every wheel needs a 64-hex sha256: it is verified like a conda package's;
- every dependency of a pip entry must be in the lock, as another pip entry or as the conda
  package that provides it under its PyPI name (``setup_tool.lock.pypi_names.CONDA_TO_PYPI``,
  e.g. ``pytorch`` provides ``torch``; conda-lock and ``setup-tool lock`` solve pip
  dependencies against the conda packages first, so a complete lock always has them; a
  missing one means a truncated or hand-edited file).

What Python the wheels are for is read from the lock's conda ``python`` / ``python_abi``
packages: the environment's interpreter is known before anything is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from setup_tool.errors import LockfileInvalid

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A requirement's name as conda-lock writes it: "name", "name[extra]" (PEP 508 names).
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``Ruamel.YAML`` → ``ruamel-yaml``."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


@dataclass(frozen=True)
class LockedWheel:
    """One ``manager: pip`` entry of a lock, for one platform (a wheel, or a source to refuse)."""

    name: str
    version: str
    url: str
    sha256: str
    platform: str
    dependencies: tuple[tuple[str, str], ...] = ()
    categories: tuple[str, ...] = ("main",)

    @property
    def filename(self) -> str:
        return unquote(PurePosixPath(urlsplit(self.url).path).name)

    # Verified by sha256 like a conda package (download.Artifact): wheels have no md5.
    md5 = ""

    @property
    def hash_kind(self) -> str | None:
        return "sha256" if self.sha256 else None

    @property
    def expected_hash(self) -> str:
        return self.sha256

    @property
    def cache_key(self) -> str:
        return self.sha256

    @property
    def channel(self) -> str:
        """Where the wheel comes from (the index's host and path), for hints."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else self.url.rsplit("/", 1)[0]

    @property
    def is_wheel(self) -> bool:
        return urlsplit(self.url).scheme in {"file", "http", "https", ""} and (
            self.filename.endswith(".whl")
        )

    @property
    def key(self) -> str:
        return canonical(self.name)

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    def tags(self) -> frozenset[Any]:
        """The wheel's compatibility tags, from its file name (``packaging.tags.Tag``)."""
        from packaging.utils import parse_wheel_filename

        return frozenset(parse_wheel_filename(self.filename)[3])


@dataclass(frozen=True)
class PythonTarget:
    """The environment's Python, as the lock's conda packages say: what wheels must fit."""

    version: tuple[int, int]
    abi: str  # "cp312", or "cp313t" for a free-threaded build

    @property
    def interpreter(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def free_threaded(self) -> bool:
        return self.abi.endswith("t")

    @property
    def site_packages(self) -> str:
        """Relative to the prefix (POSIX layout; Windows prefixes use ``Lib/site-packages``)."""
        suffix = "t" if self.free_threaded else ""
        return f"lib/python{self.version[0]}.{self.version[1]}{suffix}/site-packages"

    def __str__(self) -> str:
        kind = " (free-threaded)" if self.free_threaded else ""
        return f"Python {self.version[0]}.{self.version[1]}{kind} ({self.abi})"


_ABI_IN_BUILD = re.compile(r"_(cp\d+t?)$")


def python_target(conda: Iterable[Any]) -> PythonTarget | None:
    """From the locked ``python`` (version) and ``python_abi`` (build ``8_cp312``,
    ``8_cp313t``) packages; None when the lock has no Python."""
    by_name = {p.name: p for p in conda}
    python = by_name.get("python")
    if python is None:
        return None
    numbers = re.match(r"(\d+)\.(\d+)", python.version)
    if numbers is None:
        return None
    version = (int(numbers.group(1)), int(numbers.group(2)))
    abi = f"cp{version[0]}{version[1]}"
    python_abi = by_name.get("python_abi")
    if python_abi is not None and (match := _ABI_IN_BUILD.search(python_abi.build or "")):
        abi = match.group(1)
    return PythonTarget(version, abi)


def read_wheels(
    path: Any, platform: str, chosen: Sequence[Any], platform_deps: Sequence[Any], hint: str
) -> tuple[LockedWheel, ...]:
    """The chosen ``manager: pip`` entries as ``LockedWheel``s, after checking that every pip
    entry of ``platform`` has its dependencies in the lock (conda-lock's LockedDependency
    objects in, ``hint`` says how to re-create the file)."""
    _check_pip_complete(path, platform, platform_deps, hint)
    return tuple(_locked_wheel(path, dep) for dep in chosen if dep.manager == "pip")


def _locked_wheel(path: Any, dep: Any) -> LockedWheel:
    wheel = LockedWheel(
        name=dep.name,
        version=dep.version,
        url=dep.url,
        sha256=(dep.hash.sha256 or "").lower(),
        platform=dep.platform,
        dependencies=tuple(sorted(dep.dependencies.items())),
        categories=tuple(sorted(getattr(dep, "categories", ()) or ("main",))),
    )
    if not wheel.is_wheel:
        return wheel  # refused by name after the machine check (refuse_sources)
    if not wheel.sha256:
        raise LockfileInvalid(
            f"{path}: pip package {dep.name} {dep.version} has no sha256, so it cannot be verified",
            "relock: conda-lock records a sha256 for every wheel",
        )
    if not _SHA256.fullmatch(wheel.sha256):
        raise LockfileInvalid(
            f"{path}: pip package {dep.name} {dep.version} has a malformed sha256 "
            f"({dep.hash.sha256!r}: not 64 hex digits)",
            "restore the lockfile from git or relock",
        )
    return wheel


def _check_pip_complete(path: Any, platform: str, deps: Sequence[Any], hint: str) -> None:
    """Each pip entry's dependencies are pip entries or conda packages of the same platform."""
    from setup_tool.lock.pypi_names import CONDA_TO_PYPI

    pip = {canonical(d.name) for d in deps if d.manager == "pip"}
    # A conda package provides the PyPI distribution its name maps to (the table the lock
    # step uses, e.g. pytorch → torch), else the one its own name is (PEP 503-normalised).
    conda = {canonical(CONDA_TO_PYPI.get(d.name, d.name)) for d in deps if d.manager == "conda"}
    conda |= {canonical(d.name) for d in deps if d.manager == "conda"}
    for dep in sorted((d for d in deps if d.manager == "pip"), key=lambda d: d.name):
        names = [m.group(1) for r in dep.dependencies if (m := _REQUIREMENT_NAME.match(r))]
        missing = sorted(n for n in names if not _provided(canonical(n), pip, conda))
        if missing:
            raise LockfileInvalid(
                f"{path} is incomplete for {platform}: pip package {dep.name} depends on "
                f"{', '.join(missing)}, which the lock has neither as a pip nor as a conda "
                f"package",
                hint or f"restore it from git (`git checkout -- {path}`), or relock",
            )


def _provided(name: str, pip: set[str], conda: set[str]) -> bool:
    return name in pip or name in conda
