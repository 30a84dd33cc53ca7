"""Fetching locked packages into the package cache, verifying each sha256 on the way in.

Conda packages and wheels alike (anything with a name, version, URL, sha256 and file name:
``Artifact``) come through here, in one batch, so nothing is installed before all are verified.

Every transport goes through here, ``file://`` included: py-rattler does not check hashes of
local packages (RATTLER_NOTES.md), so the installer only ever hands it archives this module
has just hashed. A cached archive is hashed again before each install that uses it, so a
corrupted or tampered cache entry is caught too; a mismatch deletes the bad file and stops
the install before anything is linked.

Cache layout (``SETUP_TOOL_CACHE``, default the user cache dir):
``archives/<sha256>/<file name>``: keyed by content, so two channels' files never collide.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from setup_tool import __version__
from setup_tool.errors import ChannelUnreachable, HashMismatch, SetupToolError

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 30.0
WORKERS = 4


class Artifact(Protocol):
    """What can be fetched: a conda package (``LockedPackage``) or a wheel (``LockedWheel``)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def channel(self) -> str: ...


A = TypeVar("A", bound=Artifact)


class DownloadReporter(Protocol):
    """Progress callbacks; called from worker threads (implementations must be thread-safe)."""

    def add_total(self, nbytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def package_done(self, package: Artifact, cached: bool) -> None: ...


class _Silent:
    def add_total(self, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def package_done(self, package: Artifact, cached: bool) -> None:
        pass


@dataclass(frozen=True)
class Fetched(Generic[A]):
    package: A
    path: Path
    cached: bool  # already in the cache (and verified again) rather than downloaded


class PackageCache:
    """Verified package archives, keyed by sha256."""

    def __init__(self, root: Path) -> None:
        # Absolute: archives reach py-rattler as file:// URLs (SETUP_TOOL_CACHE=rel crashed).
        self.root = Path(os.path.abspath(root))  # noqa: PTH100  (as given; no symlink resolving)
        self.archives = root / "archives"

    def archive(self, package: Artifact) -> Path:
        return self.archives / package.sha256 / package.filename

    def has(self, package: Artifact) -> bool:
        return self.archive(package).is_file()


class _Cancelled(Exception):
    """Another download failed or the user pressed Ctrl-C: stop at the next chunk."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_all(
    packages: Sequence[A],
    cache: PackageCache,
    reporter: DownloadReporter | None = None,
    *,
    workers: int = WORKERS,
) -> list[Fetched[A]]:
    """Every package's verified archive in the cache, or an error before anything is installed."""
    reporter = reporter or _Silent()
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fetch") as pool:
        futures: list[Future[Fetched[A]]] = [
            pool.submit(_fetch_one, package, cache, reporter, stop) for package in packages
        ]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        except BaseException:
            stop.set()  # other downloads stop at their next chunk and clean up
            for future in futures:
                future.cancel()
            raise
        # In the order asked for (a lock may name a conda and a pip package alike).
        return [future.result() for future in futures]


def _fetch_one(
    package: A, cache: PackageCache, reporter: DownloadReporter, stop: threading.Event
) -> Fetched[A]:
    if stop.is_set():  # another package failed while this one waited for a worker
        raise _Cancelled
    target = cache.archive(package)
    if target.is_file():
        size = target.stat().st_size
        reporter.add_total(size)
        if sha256_of(target) == package.sha256:
            reporter.advance(size)
            reporter.package_done(package, cached=True)
            return Fetched(package, target, cached=True)
        target.unlink()  # corrupted or tampered cache entry: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        digest = _download(package, partial, reporter, stop)
        if digest != package.sha256:
            raise HashMismatch(
                f"{package.name} {package.version} ({package.filename}) has sha256 {digest[:16]}… "
                f"but the lock says {package.sha256[:16]}…; the download was deleted and nothing "
                f"was installed",
                f"the file at {package.url} changed since it was locked: relock "
                f"(`setup-tool lock`) only if you trust the new file",
            )
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    reporter.package_done(package, cached=False)
    return Fetched(package, target, cached=False)


def _remove_stale_parts(target: Path) -> None:
    """Delete partial downloads of ``target`` left by processes that no longer exist (a kill
    mid-download); another live install may be writing its own, so those stay."""
    for part in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        pid = part.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _download(
    package: Artifact, destination: Path, reporter: DownloadReporter, stop: threading.Event
) -> str:
    """Copy ``package.url`` to ``destination``, returning the sha256 of what was written."""
    digest = hashlib.sha256()
    scheme = urlsplit(package.url).scheme
    with destination.open("wb") as out:
        if scheme in {"file", ""}:
            source = Path(unquote(urlsplit(package.url).path))
            if not source.is_file():
                raise SetupToolError(
                    f"{package.name} {package.version} is not in the channel: {package.url} "
                    f"does not exist",
                    "the channel no longer has this file: relock with `setup-tool lock`",
                )
            reporter.add_total(source.stat().st_size)
            with source.open("rb") as handle:
                _copy(handle, out, digest, reporter, stop)
        elif scheme in ("http", "https"):
            broke_off = (
                f"the download of {package.name} from {urlsplit(package.url).netloc} broke off"
            )
            retry = "try again: finished downloads are kept in the cache"
            try:
                with _open_url(package, stop) as response:
                    length = response.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                    if expected is not None:
                        reporter.add_total(expected)
                    received = _copy(response, out, digest, reporter, stop)
            except (OSError, http.client.HTTPException) as exc:
                raise ChannelUnreachable(f"{broke_off}: {exc}", retry) from None
            # http.client's read(n) ends quietly at a connection closed early; without this
            # check a cut-off download would be reported as a tampered package (exit 7).
            if expected is not None and received < expected:
                raise ChannelUnreachable(f"{broke_off} after {received} of {expected} bytes", retry)
        else:
            raise SetupToolError(
                f"{package.name}: unsupported URL scheme {scheme!r} in {package.url}",
                "setup-tool installs from file://, http:// and https:// URLs",
            )
    return digest.hexdigest()


def _copy(source, out, digest, reporter: DownloadReporter, stop: threading.Event) -> int:  # type: ignore[no-untyped-def]
    """Copy until EOF; the number of bytes copied."""
    copied = 0
    while chunk := source.read(CHUNK):
        if stop.is_set():
            raise _Cancelled
        out.write(chunk)
        digest.update(chunk)
        reporter.advance(len(chunk))
        copied += len(chunk)
    return copied


def _open_url(package: Artifact, stop: threading.Event, attempts: int = 3):  # type: ignore[no-untyped-def]
    """urlopen with a bounded timeout and retries for transient failures (not for 4xx); no
    more retries once another download has failed."""
    request = urllib.request.Request(
        package.url, headers={"User-Agent": f"setup-tool/{__version__}"}
    )
    host = urlsplit(package.url).netloc
    for attempt in range(attempts):
        try:
            return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == attempts - 1:
                raise SetupToolError(
                    f"{package.name} {package.version}: {package.url} answered HTTP {exc.code}",
                    "the channel no longer has this file: relock with `setup-tool lock`"
                    if exc.code == 404
                    else "try again later, or check access to the channel",
                ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == attempts - 1:
                reason = getattr(exc, "reason", exc)
                raise ChannelUnreachable(
                    f"cannot reach {host} for {package.name}: {reason}",
                    "check the network or proxy settings (HTTPS_PROXY); the lock's packages "
                    f"come from {package.channel}",
                ) from None
        if stop.wait(0.5 * (attempt + 1)):
            raise _Cancelled
    raise AssertionError("unreachable")


def download_sizes(packages: Sequence[Artifact], timeout: float = 5.0) -> dict[str, int | None]:
    """Each package's size without downloading it (stat, or an HTTP HEAD); None when unknown."""

    def size(package: Artifact) -> int | None:
        parts = urlsplit(package.url)
        if parts.scheme in ("file", ""):
            path = Path(unquote(parts.path))
            return path.stat().st_size if path.is_file() else None
        request = urllib.request.Request(
            package.url, method="HEAD", headers={"User-Agent": f"setup-tool/{__version__}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
        except (OSError, http.client.HTTPException):
            return None
        return int(length) if length and length.isdigit() else None

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="size") as pool:
        return dict(zip([p.name for p in packages], pool.map(size, packages), strict=True))
