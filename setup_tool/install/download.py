"""Fetching locked packages into the package cache, verifying each hash on the way in.

Conda packages and wheels alike (anything with a name, version, URL, hashes and file name: an
``Artifact``) come through here, in one batch, so nothing is installed before all are verified.

Packages are verified by the lock's sha256, or by its md5 where that is all the lock records
(explicit lockfiles). Every transport goes through here, ``file://`` included: py-rattler does
not check the hashes of local packages it is given (it trusts a ``RepoDataRecord``'s file), so
the installer only ever hands it archives this module has just hashed. A mismatch deletes a
bad download (never a channel's own file) and stops the install before anything is linked.

- ``http(s)://`` packages are downloaded into the cache, hashed on the way in.
- ``file://`` packages are hashed where they are and not copied: a copy would double the
  install's disk writes (a 3 GB environment: 3 GB more). Their identity at hashing time
  (``Fetched.identity``) is checked again after linking (``changed_since_verified``), so a
  file that changed while py-rattler read it fails the install before the swap.
- A file verified before and unchanged since (its stamp, ``stamps.py``) is not hashed again;
  ``verify_all`` (``install --verify-cache``) hashes every file regardless.

Cache layout (``SETUP_TOOL_CACHE``, default the user cache dir):
``archives/<sha256>/<file name>`` (``md5-<md5>`` for md5-only packages): keyed by content, so
two channels' files never collide; ``stamps/``: see ``stamps.py``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from setup_tool import __version__
from setup_tool.errors import ChannelUnreachable, HashMismatch, SetupToolError
from setup_tool.install.stamps import FileId, Stamps

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 30.0
WORKERS = 4
SIGNAL_POLL_S = 0.2  # how often a waiting main thread looks for Ctrl-C


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
    def md5(self) -> str: ...
    @property
    def hash_kind(self) -> str | None: ...
    @property
    def expected_hash(self) -> str: ...
    @property
    def cache_key(self) -> str: ...
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
    path: Path  # the verified archive: in the cache, or a file:// channel's own file
    cached: bool  # verified by an earlier install (cache or stamp), not fetched or hashed now
    sha256: str = ""  # the archive's sha256 (the lock's, or computed for md5-only packages)
    identity: FileId | None = None  # of a file:// source when it was verified


def changed_since_verified(fetched: Sequence[Fetched[Any]]) -> list[Fetched[Any]]:
    """The ``file://`` sources that are no longer the files that were hashed."""
    return [f for f in fetched if f.identity is not None and FileId.of(f.path) != f.identity]


class PackageCache:
    """Verified package archives, keyed by sha256."""

    def __init__(self, root: Path) -> None:
        # Absolute: archives reach py-rattler as file:// URLs (SETUP_TOOL_CACHE=rel crashed).
        self.root = Path(os.path.abspath(root))  # noqa: PTH100  (as given; no symlink resolving)
        self.archives = self.root / "archives"
        self.stamps = Stamps(self.root / "stamps")

    def prepare(self) -> None:
        """Make sure archives can be written here, or say why not (before any download)."""
        try:
            self.archives.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.archives, prefix=".write-test-")
            os.close(fd)
            Path(probe).unlink()
        except OSError as exc:
            blocker = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
            why = (
                f"{blocker} is a file, not a directory"
                if blocker is not None and not blocker.is_dir()
                else f"cannot write in {blocker or self.root} ({exc.strerror or exc})"
            )
            raise SetupToolError(
                f"cannot use the package cache at {self.root}: {why}",
                "point SETUP_TOOL_CACHE at a directory you can write to, or unset it to use "
                "the default (your user cache directory)",
            ) from None

    def archive(self, package: Artifact) -> Path:
        return self.archives / package.cache_key / package.filename

    def has(self, package: Artifact) -> bool:
        """Nothing to fetch: in the cache, or a ``file://`` file verified and unchanged since."""
        source = _local_source(package)
        if source is not None:
            return self.stamps.verified_archive(source) is not None
        return self.archive(package).is_file()


class _Cancelled(Exception):
    """Another download failed or the user pressed Ctrl-C: stop at the next chunk."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Digests:
    """The sha256 of what was read, and the md5 too when the lock verifies by md5."""

    def __init__(self, package: Artifact) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if package.hash_kind == "md5" else None

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)

    def matches(self, package: Artifact) -> bool:
        if package.hash_kind == "md5" and self.md5 is not None:
            return self.md5.hexdigest() == package.md5
        if package.hash_kind is None:
            return True  # unverified (--allow-unverified): nothing to compare with
        return self.sha256.hexdigest() == package.sha256

    def found(self, package: Artifact) -> str:
        """What the lock's kind of hash is for the bytes read, for messages."""
        return (self.md5 or self.sha256).hexdigest()


def _digests_of(path: Path, package: Artifact) -> _Digests:
    digests = _Digests(package)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digests.update(chunk)
    return digests


def fetch_all(
    packages: Sequence[A],
    cache: PackageCache,
    reporter: DownloadReporter | None = None,
    *,
    workers: int = WORKERS,
    verify_all: bool = False,
) -> list[Fetched[A]]:
    """Every package's verified archive in the cache, or an error before anything is installed.

    On any failure, Ctrl-C included, this returns only once every download that had started
    has stopped and deleted its partial file: the caller may exit at once (``cli.main`` skips
    interpreter finalization), and a worker still writing would leave a ``.part`` behind.
    """
    reporter = reporter or _Silent()
    stop = threading.Event()
    in_flight = _InFlight()
    futures: list[Future[Fetched[A]]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fetch") as pool:
        try:
            # Submitting starts worker threads, which may start downloading before the last
            # submit returns: a Ctrl-C landing here must stop them too, hence inside the try.
            for package in packages:
                futures.append(
                    pool.submit(_fetch_one, package, cache, reporter, stop, in_flight, verify_all)
                )
            for future in _as_they_fail(futures):
                if (error := future.exception()) is not None:
                    raise error
        except BaseException:
            stop.set()  # other downloads stop at their next read and clean up
            for future in futures:
                future.cancel()
            # Not only the executor's join: a thread started by an interrupted submit is not
            # in its list, and a work item queued then has no future here.
            in_flight.wait_idle()
            raise
        # In the order asked for (a lock may name a conda and a pip package alike).
        return [future.result() for future in futures]


def _as_they_fail(futures: Sequence[Future[Fetched[A]]]) -> set[Future[Fetched[A]]]:
    """The finished futures once all are done or one has failed.

    Waits in short slices: a Ctrl-C that the kernel hands to a download thread only sets
    Python's flag, and the main thread raises KeyboardInterrupt when it next runs bytecode,
    which an untimed wait would put off until the downloads end.
    """
    while True:
        done, pending = wait(futures, timeout=SIGNAL_POLL_S, return_when=FIRST_EXCEPTION)
        if not pending or any(f.exception() is not None for f in done):
            return done


class _InFlight:
    """Counts the fetches running now, so an interrupted ``fetch_all`` can wait for them all."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self) -> None:
        """Block until no fetch runs. A second Ctrl-C ends the wait (the user insists); a
        partial file left then is deleted by the next install (``_remove_stale_parts``)."""
        with self._idle:
            while not self._idle.wait_for(lambda: self._count == 0, timeout=SIGNAL_POLL_S):
                pass  # sliced, so that a second Ctrl-C is seen (see _as_they_fail)


def _fetch_one(
    package: A,
    cache: PackageCache,
    reporter: DownloadReporter,
    stop: threading.Event,
    in_flight: _InFlight,
    verify_all: bool = False,
) -> Fetched[A]:
    # Counted before the stop check: once fetch_all has set `stop` and seen no fetch running,
    # any fetch that starts later sees `stop` and creates nothing.
    with in_flight:
        if stop.is_set():  # another package failed while this one waited for a worker
            raise _Cancelled
        source = _local_source(package)
        if source is not None:
            return _verify_in_place(package, source, cache.stamps, reporter, stop, verify_all)
        return _fetch_into_cache(package, cache, reporter, stop, verify_all)


def _local_source(package: Artifact) -> Path | None:
    """The file of a ``file://`` package (None for other schemes)."""
    parts = urlsplit(package.url)
    return Path(unquote(parts.path)) if parts.scheme in {"file", ""} else None


def _stamped(package: Artifact, path: Path, stamps: Stamps) -> str | None:
    """The sha256 of ``path`` if its stamp says it is the file verified for ``package``."""
    if package.hash_kind is None:
        return None  # unverified (--allow-unverified): there is nothing a stamp could vouch for
    sha256 = stamps.verified_archive(path)
    if sha256 is None or (package.hash_kind == "sha256" and sha256 != package.sha256):
        return None
    return sha256


def _verify_in_place(
    package: A,
    source: Path,
    stamps: Stamps,
    reporter: DownloadReporter,
    stop: threading.Event,
    verify_all: bool,
) -> Fetched[A]:
    """Hash a ``file://`` channel's own file where it lies (or trust its unchanged stamp)."""
    identity = FileId.of(source)
    if identity is None or not source.is_file():
        raise _not_in_channel(package)
    reporter.add_total(identity.size)
    known = None if verify_all else _stamped(package, source, stamps)
    if known is not None:
        reporter.advance(identity.size)
        reporter.package_done(package, cached=True)
        return Fetched(package, source, cached=True, sha256=known, identity=identity)
    digests = _Digests(package)
    with source.open("rb") as handle:
        _copy(handle, None, digests, reporter, stop)
    if not digests.matches(package):
        raise _mismatch(package, digests, deleted=False)
    sha256 = digests.sha256.hexdigest()
    if package.hash_kind is not None:
        stamps.record_archive(source, sha256, identity)
    reporter.package_done(package, cached=False)
    return Fetched(package, source, cached=False, sha256=sha256, identity=identity)


def _not_in_channel(package: Artifact) -> SetupToolError:
    return SetupToolError(
        f"{package.name} {package.version} is not in the channel: {package.url} does not exist",
        "the channel no longer has this file: relock with `setup-tool lock`",
    )


def _mismatch(package: Artifact, digests: _Digests, *, deleted: bool) -> HashMismatch:
    kind, found = package.hash_kind, digests.found(package)
    what = "the download was deleted and nothing" if deleted else "nothing"
    return HashMismatch(
        f"{package.name} {package.version} ({package.filename}) has {kind} {found[:16]}… "
        f"but the lock says {package.expected_hash[:16]}…; {what} was installed",
        f"the file at {package.url} changed since it was locked: relock only if you trust the "
        f"new file",
    )


def _fetch_into_cache(
    package: A,
    cache: PackageCache,
    reporter: DownloadReporter,
    stop: threading.Event,
    verify_all: bool = False,
) -> Fetched[A]:
    target = cache.archive(package)
    if target.is_file() and package.hash_kind is not None:  # unverified ones: always fetch
        size = target.stat().st_size
        reporter.add_total(size)
        known = None if verify_all else _stamped(package, target, cache.stamps)
        if known is None:
            digests = _digests_of(target, package)
            known = digests.sha256.hexdigest() if digests.matches(package) else None
            if known is not None:
                cache.stamps.record_archive(target, known)
        if known is not None:
            reporter.advance(size)
            reporter.package_done(package, cached=True)
            return Fetched(package, target, cached=True, sha256=known)
        target.unlink()  # corrupted or tampered cache entry: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        digests = _download(package, partial, reporter, stop)
        if not digests.matches(package):
            raise _mismatch(package, digests, deleted=True)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    if package.hash_kind is not None:
        cache.stamps.record_archive(target, digests.sha256.hexdigest())
    reporter.package_done(package, cached=False)
    return Fetched(package, target, cached=False, sha256=digests.sha256.hexdigest())


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
) -> _Digests:
    """Copy ``package.url`` to ``destination``, returning the digests of what was written."""
    digest = _Digests(package)
    scheme = urlsplit(package.url).scheme
    with destination.open("wb") as out:
        if scheme in ("http", "https"):
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
    return digest


def _copy(source, out, digest, reporter: DownloadReporter, stop: threading.Event) -> int:  # type: ignore[no-untyped-def]
    """Copy until EOF (``out`` None: only hash); the number of bytes copied.

    ``read1`` returns what has arrived (at most one system call) where ``read(n)`` waits for
    all n bytes: on a slow link the stop flag is seen within one network read, not one MiB.
    """
    copied = 0
    while chunk := source.read1(CHUNK):
        if stop.is_set():
            raise _Cancelled
        if out is not None:
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


def local_sizes(packages: Sequence[Artifact]) -> dict[str, int | None]:
    """Each package's size where it is known without the network: a ``file://`` URL's file.
    None for the others. A dry run never blocks on a channel: with one request per package it
    took minutes for a lock of ~1,000 packages behind a proxy that does not answer."""

    def size(package: Artifact) -> int | None:
        parts = urlsplit(package.url)
        if parts.scheme not in ("file", ""):
            return None
        try:
            return Path(unquote(parts.path)).stat().st_size
        except OSError:
            return None

    return {package.name: size(package) for package in packages}
