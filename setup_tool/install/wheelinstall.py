"""Installing verified wheels into the staged prefix with pypa ``installer``.

Runs after py-rattler has linked the conda packages into the staging directory and before the
state file is written, so wheels are part of the same atomic swap (``prefix.py``). Each wheel
goes through ``installer.install`` with a scheme rooted in the staging directory:

- ``purelib`` / ``platlib``: ``lib/python3.X/site-packages`` (``Lib/site-packages`` on
  Windows), where the lock's conda Python looks;
- ``scripts``: ``bin`` (``Scripts``), ``data``: the prefix, ``headers``:
  ``include/python3.X/<name>``: pip's layout for a conda prefix;
- console scripts and ``#!python`` scripts get the **final** prefix's interpreter in their
  shebang: the staging directory is swapped into place afterwards, and a shebang is the one
  absolute path a wheel install writes (``RECORD`` entries are relative to site-packages, so
  they stay right after the swap);
- ``INSTALLER`` says ``setup-tool`` and ``direct_url.json`` (PEP 610) records the lock's URL
  and the wheel's sha256: ``pip list``, ``pip uninstall`` and ``importlib.metadata`` work, and
  the next install knows exactly which wheel is there.

No bytecode is compiled: that is uv's default too; CPython writes ``__pycache__`` on first
import where the environment is writable, and compiling every module of a large wheel (torch
has ~2,400) would cost more than the install itself.

Wheels are installed by a few threads, largest first (zlib, hashing and file writes release the
GIL, so small wheels go in while torch is written). One wheel is one thread: splitting torch's
12,000 files over threads, tried with installer's API, did not make it faster on a 2-core
machine (each thread re-reads the zip directory, and most of the work holds the GIL), so it is
not done; ``docs/install.md`` has the figures.

A file that a wheel would write where another package of the lock already put one is an
error: conda-lock's ``pip install`` would silently overwrite the conda package's file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme

from setup_tool.errors import SetupToolError
from setup_tool.install.download import Fetched
from setup_tool.install.sitepackages import INSTALLER_NAME, direct_url
from setup_tool.install.wheels import LockedWheel, PythonTarget

if TYPE_CHECKING:
    from installer.scripts import LauncherKind

WORKERS = 4
# installer's launcher kinds for Windows prefixes (installer.scripts.LauncherKind).
_WINDOWS_LAUNCHER: dict[str, LauncherKind] = {
    "win-64": "win-amd64",
    "win-32": "win-ia32",
    "win-arm64": "win-arm64",
}


def site_packages(python: PythonTarget, platform: str) -> str:
    """site-packages relative to the prefix."""
    return "Lib/site-packages" if platform.startswith("win-") else python.site_packages


def scheme(root: Path, python: PythonTarget, platform: str, name: str) -> dict[str, str]:
    """The installation scheme of a conda prefix at ``root`` (pip's ``posix_prefix`` /
    ``nt`` layout, which is where a conda environment's Python looks)."""
    packages = str(root / site_packages(python, platform))
    if platform.startswith("win-"):
        return {
            "purelib": packages,
            "platlib": packages,
            "scripts": str(root / "Scripts"),
            "data": str(root),
            "headers": str(root / "Include" / name),
        }
    major, minor = python.version
    suffix = "t" if python.free_threaded else ""
    return {
        "purelib": packages,
        "platlib": packages,
        "scripts": str(root / "bin"),
        "data": str(root),
        "headers": str(root / "include" / f"python{major}.{minor}{suffix}" / name),
    }


def interpreter(prefix: Path, platform: str) -> str:
    """The Python that scripts name: the final prefix's, never the staging one's."""
    return str(prefix / "python.exe") if platform.startswith("win-") else str(prefix / "bin/python")


def install_wheels(
    fetched: Sequence[Fetched[LockedWheel]],
    *,
    staging: Path,
    final_prefix: Path,
    python: PythonTarget,
    platform: str,
    on_installed: Callable[[], None] | None = None,
    workers: int = WORKERS,
) -> None:
    """Install every wheel into ``staging``, as if it were at ``final_prefix``."""
    claims = _Claims()
    # Largest first: torch should not be the one left to install alone at the end.
    order = sorted(fetched, key=lambda item: item.path.stat().st_size, reverse=True)
    stop = threading.Event()

    def one(item: Fetched[LockedWheel]) -> None:
        if stop.is_set():
            return
        _install_one(item, staging, final_prefix, python, platform, claims)
        if on_installed is not None:
            on_installed()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="wheel") as pool:
        futures = [pool.submit(one, item) for item in order]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            stop.set()  # the others finish the wheel they are on; the staging tree is deleted
            for future in futures:
                future.cancel()
            raise failed.exception()  # type: ignore[misc]


def _install_one(
    item: Fetched[LockedWheel],
    staging: Path,
    final_prefix: Path,
    python: PythonTarget,
    platform: str,
    claims: _Claims,
) -> None:
    wheel = item.package
    destination = _SharedDestination(
        scheme(staging, python, platform, wheel.name),
        interpreter=interpreter(final_prefix, platform),
        script_kind=_WINDOWS_LAUNCHER.get(platform, "posix"),
    )
    destination.claims, destination.owner = claims, wheel.key
    metadata = {
        "INSTALLER": f"{INSTALLER_NAME}\n".encode(),
        "direct_url.json": direct_url(wheel.url, wheel.sha256),
    }
    with _wheel_errors(wheel, staging), WheelFile.open(item.path) as source:
        install(source, destination, metadata)


class _Claims:
    """Which wheel writes which file, and the directories made, shared by the threads: two
    wheels of one lock writing the same path is an error, whichever comes first."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self.made: set[str] = set()  # directories made (a set's add is atomic under the GIL)

    def claim(self, path: str, owner: str) -> None:
        with self._lock:
            if self._owners.setdefault(path, owner) != owner:
                raise FileExistsError(f"File already exists: {path}")


class _SharedDestination(SchemeDictionaryDestination):
    """installer's destination, for wheels written by several threads into one prefix.

    - parent directories are made with ``exist_ok``: installer's exists-then-mkdir races
      between two wheels making a shared directory (``site-packages/nvidia`` for every
      ``nvidia-*-cu12`` wheel) at once;
    - every target path is claimed (``_Claims``): another wheel's file is never overwritten,
      even when both are written at the same moment (installer's own check covers the files
      conda put there).
    """

    claims: _Claims
    owner: str

    def write_to_fs(
        self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        root = self.scheme_dict[scheme]
        target = os.path.normpath(os.path.join(root, path))  # noqa: PTH118
        if target.startswith(root + os.sep):  # else installer refuses it below
            self.claims.claim(target, self.owner)
            parent = os.path.dirname(target)  # noqa: PTH120
            if parent not in self.claims.made:  # one mkdir per directory, not per file
                os.makedirs(parent, exist_ok=True)  # noqa: PTH103
                self.claims.made.add(parent)
        return super().write_to_fs(scheme, path, stream, is_executable)


@contextlib.contextmanager
def _wheel_errors(wheel: LockedWheel, staging: Path) -> Iterator[None]:
    """installer's exceptions as one-line errors (OSErrors, a full disk and the like, go to
    the caller, which reports those)."""
    try:
        yield
    except FileExistsError as exc:
        where = _relative(Path(str(exc).removeprefix("File already exists: ")), staging)
        raise SetupToolError(
            f"pip package {wheel.name} {wheel.version} would overwrite {where}, which another "
            f"package of the lock installed; the previous environment is unchanged",
            "relock so that each Python package comes from conda or from pip, not both",
        ) from None
    except (InstallerError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise SetupToolError(
            f"{wheel.filename} (pip package {wheel.name} {wheel.version}) is not an "
            f"installable wheel: {exc}; the previous environment is unchanged",
            "its sha256 matches the lock, so the lock names a broken wheel: relock",
        ) from None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return os.fspath(path)
