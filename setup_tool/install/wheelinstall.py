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

Wheels are installed by a few threads, largest first, and a large wheel in slices of its files
(``_Slice``), one per thread: creating 12,000 files is most of torch's install, and the GIL is
released while the kernel creates a file, inflates (zlib) or hashes. installer's own API is used
for each slice; the destination (``_SlicedDestination``) makes parent directories safely from
several threads and writes one RECORD for the whole wheel.

A file that a wheel would write where another package of the lock already put one is an
error: conda-lock's ``pip install`` would silently overwrite the conda package's file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import RecordEntry
from installer.sources import WheelContentElement, WheelFile
from installer.utils import Scheme

from setup_tool.errors import SetupToolError
from setup_tool.install.download import Fetched
from setup_tool.install.sitepackages import INSTALLER_NAME, direct_url
from setup_tool.install.wheels import LockedWheel, PythonTarget

WORKERS = 4
# A wheel is installed in slices of at least this many files, at most WORKERS slices: file
# creation dominates a large wheel's install (torch: 12,000 files), and threads creating files
# in parallel overlap the filesystem's latency (the GIL is released while the kernel works).
FILES_PER_SLICE = 500
# installer's launcher kinds for Windows prefixes (installer.scripts.LauncherKind).
_WINDOWS_LAUNCHER = {"win-64": "win-amd64", "win-32": "win-ia32", "win-arm64": "win-arm64"}


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
    jobs = [
        _WheelJob(item, staging, final_prefix, python, platform, claims, on_installed)
        for item in fetched
    ]
    # Largest first, so that torch's slices do not start last; each slice is one task.
    tasks = [
        (job, index)
        for job in sorted(jobs, key=lambda job: job.size, reverse=True)
        for index in range(job.parts)
    ]
    stop = threading.Event()

    def run(job: _WheelJob, index: int) -> None:
        if not stop.is_set():
            job.install_slice(index)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="wheel") as pool:
        futures = [pool.submit(run, job, index) for job, index in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            stop.set()  # the others finish the slice they are on; the staging tree is deleted
            for future in futures:
                future.cancel()
            raise failed.exception()  # type: ignore[misc]


class _Claims:
    """Which wheel writes which file: two wheels of one lock writing the same path is an error
    (checked here because the slices of different wheels write at the same time)."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self.made: set[str] = set()  # directories made (a set's add is atomic under the GIL)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def claim(self, path: str, owner: str) -> None:
        with self._lock:
            if self._owners.setdefault(path, owner) != owner:
                raise FileExistsError(f"File already exists: {path}")


class _WheelJob:
    """One wheel, installed as ``parts`` slices of its files by as many threads; the last
    slice to finish writes RECORD (for all of them) and reports the wheel installed."""

    def __init__(
        self,
        item: Fetched[LockedWheel],
        staging: Path,
        final_prefix: Path,
        python: PythonTarget,
        platform: str,
        claims: _Claims,
        on_installed: Callable[[], None] | None,
    ) -> None:
        self.item, self.staging, self.on_installed = item, staging, on_installed
        self.size = item.path.stat().st_size
        self.parts = _parts(item.path)
        self.destination = _destination(
            scheme(staging, python, platform, item.package.name),
            interpreter(final_prefix, platform),
            _launcher(platform),
            claims,
            owner=item.package.key,
        )
        self._left = self.parts
        self._lock = threading.Lock()

    def install_slice(self, index: int) -> None:
        wheel = self.item.package
        metadata = {
            "INSTALLER": f"{INSTALLER_NAME}\n".encode(),
            "direct_url.json": direct_url(wheel.url, wheel.sha256),
        }
        with _wheel_errors(wheel, self.staging):
            with zipfile.ZipFile(self.item.path) as archive:
                source = _slice_source(archive, index, self.parts)
                install(source, self.destination, metadata if index == 0 else {})
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                self.destination.write_record()
        if last and self.on_installed is not None:
            self.on_installed()


def _parts(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        count = len(archive.infolist())
    return max(1, min(WORKERS, count // FILES_PER_SLICE))


class _Slice(WheelFile):
    """Every ``count``-th file of a wheel, from ``index``: one thread's share of the wheel.

    Only slice 0 reports ``entry_points.txt``, so console scripts are written once. Each
    thread opens the wheel itself (a ``ZipFile`` is not safe to share between threads).
    """

    def __init__(self, archive: zipfile.ZipFile, index: int, count: int) -> None:
        super().__init__(archive)
        self.index, self.count = index, count

    @property
    def dist_info_filenames(self) -> list[str]:
        names = super().dist_info_filenames
        return names if self.index == 0 else [n for n in names if n != "entry_points.txt"]

    def get_contents(self) -> Iterator[WheelContentElement]:
        for position, element in enumerate(super().get_contents()):
            if position % self.count == self.index:
                yield element


def _slice_source(archive: zipfile.ZipFile, index: int, count: int) -> WheelFile:
    return WheelFile(archive) if count == 1 else _Slice(archive, index, count)


class _SlicedDestination(SchemeDictionaryDestination):
    """installer's destination, for slices written by several threads at once.

    - parent directories are made with ``exist_ok`` (installer's exists-then-mkdir races
      between threads: two slices making ``torch/ao`` at once);
    - every target path is claimed (``_Claims``): another wheel's file is never overwritten;
    - RECORD is written once, with every slice's entries, by ``write_record``.
    """

    claims: _Claims
    owner: str
    _records: list[tuple[Scheme, RecordEntry]]
    _record_path: tuple[Scheme, str] | None

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

    def finalize_installation(
        self, scheme: Scheme, record_file_path: str, records: Iterable[tuple[Scheme, RecordEntry]]
    ) -> None:
        with self.claims.lock:
            self._record_path = (scheme, record_file_path)
            self._records.extend(r for r in records if r[1].path != record_file_path)

    def write_record(self) -> None:
        assert self._record_path is not None
        scheme, path = self._record_path
        entries = [*self._records, (scheme, RecordEntry(path, None, None))]
        super().finalize_installation(scheme, path, entries)


def _destination(
    scheme_dict: dict[str, str], python: str, launcher: Any, claims: _Claims, *, owner: str
) -> _SlicedDestination:
    destination = _SlicedDestination(scheme_dict, interpreter=python, script_kind=launcher)
    destination.claims, destination.owner = claims, owner
    destination._records, destination._record_path = [], None
    return destination


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


def _launcher(platform: str) -> Any:
    return _WINDOWS_LAUNCHER.get(platform, "posix")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return os.fspath(path)
