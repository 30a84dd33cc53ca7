"""``setup-tool install``: a conda-lock file → a verified, atomic environment at a prefix.

    read lock (lockread.py) ─► machine check (compat.py) ─► plan (plan.py)
      ─► fetch + sha256 (download.py) ─► link into staging (link.py)
      ─► state file, atomic swap (prefix.py)

Nothing is downloaded before the machine check passes, nothing is linked before every
package's hash matches, and the live prefix only ever changes by one atomic swap. The same
lock into the same prefix is a no-op ("up to date"). ``prefix.py`` documents the design.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setup_tool import __version__
from setup_tool.errors import LockfileInvalid, LockfileMismatch, SetupToolError, UsageError
from setup_tool.install import prefix as prefixes
from setup_tool.install.compat import MachineCheck, MachineFacts, assess
from setup_tool.install.download import PackageCache, fetch_all, local_sizes
from setup_tool.install.lockread import LockedPlatform, read_locked_platform
from setup_tool.install.plan import Plan, make_plan
from setup_tool.install.progress import Progress
from setup_tool.install.request import InstallRequest, install_request, machine_facts
from setup_tool.interpreter import prefix_python

__all__ = [
    "InstallRequest",
    "InstallResult",
    "MachineFacts",
    "install",
    "install_request",
    "machine_facts",
]

# Why a dry run's plan may lack sizes (docs/install.md, "Dry run").
UNKNOWN_SIZES_NOTE = (
    "a dry run does not contact the channel, and lockfiles record no sizes; the sizes of "
    "packages already in the cache and of file:// packages are counted"
)


@dataclass(frozen=True)
class InstallResult:
    status: str  # "installed", "up-to-date", "dry-run"
    prefix: Path
    lockfile: Path
    platform: str
    plan: Plan
    python: Path
    seconds: float
    downloaded: int = 0
    reused: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "prefix": str(self.prefix),
            "lockfile": str(self.lockfile),
            "platform": self.platform,
            "python": str(self.python),
            "plan": self.plan.to_json(),
            "downloaded": self.downloaded,
            "reused_from_cache": self.reused,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


def install(request: InstallRequest, progress: Progress | None = None) -> InstallResult:
    """Install the lock's packages for ``request.platform`` at ``request.prefix``."""
    progress = progress or Progress()
    started = time.monotonic()
    if not request.dry_run and (fast := _unchanged(request, started)) is not None:
        return fast
    locked = read_locked_platform(
        request.lockfile,
        request.platform,
        request.categories,
        refresh_hint=request.refresh_hint,
        allow_unverified=request.allow_unverified,
    )
    check = assess(locked, request.machine)
    _refuse_mismatch(locked, check, request)
    _refuse_pip(locked)
    warnings = (*locked.warnings, *check.warnings)
    prefix = _absolute(request.prefix)
    cache = PackageCache(request.cache_root)

    if request.dry_run:
        _check_replaceable(prefix)
        current = prefixes.installed_records(prefix) if prefixes.read_state(prefix) else {}
        missing = [p for p in locked.packages if not cache.has(p)]
        plan = make_plan(
            locked, current, cache, sizes=local_sizes(missing), size_note=UNKNOWN_SIZES_NOTE
        )
        return _result("dry-run", request, prefix, plan, started, warnings=warnings)

    _check_replaceable(prefix)  # before the lock file is made next to it
    _check_writable(prefix)
    with prefixes.prefix_lock(prefix, on_wait=progress.step):
        prefixes.recover(prefix, log=progress.step)
        if prefixes.is_foreign(prefix):
            raise _foreign(prefix)
        current = prefixes.installed_records(prefix) if prefixes.read_state(prefix) else {}
        plan = make_plan(locked, current, cache)
        if plan.up_to_date:
            # Same packages from a lockfile whose bytes changed (relocked, reformatted):
            # record it, so the next run takes the fast path.
            prefixes.write_state(prefix, _state(locked, request))
            return _result("up-to-date", request, prefix, plan, started, warnings=warnings)
        cache.prepare()  # only now: an up-to-date prefix does not need a usable cache
        try:
            fetched = _fetch(locked, cache, progress)
            _crash_point("after-fetch")
            _build_and_swap(fetched, locked, request, prefix, progress)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _no_space(prefix, request) from None
            raise
        downloaded = sum(1 for f in fetched if not f.cached)
        return _result(
            "installed",
            request,
            prefix,
            plan,
            started,
            downloaded,
            len(fetched) - downloaded,
            warnings=warnings,
        )


def _absolute(prefix: Path) -> Path:
    """The prefix as written into the environment's files: absolute, ``..`` collapsed the way
    a shell would (``Path.absolute`` keeps ``a/../env``, and would create ``a``), symlinks kept
    (the user may move what they point at)."""
    return Path(os.path.abspath(prefix))  # noqa: PTH100  (resolve() follows symlinks)


def _lockfile_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _unchanged(request: InstallRequest, started: float) -> InstallResult | None:
    """The no-op fast path: the prefix was installed from this very lockfile (same bytes,
    platform and categories), its conda-meta still lists exactly those packages, and no
    interrupted install left anything behind. Skips parsing the lock (importing conda-lock
    alone takes ~0.5 s), so "up to date" stays well under 1 s.
    """
    prefix = _absolute(request.prefix)
    state = prefixes.read_state(prefix)
    if (
        state is None
        or state.get("lockfile_sha256") != _lockfile_digest(request.lockfile)
        or state.get("platform") != request.platform
        or state.get("categories") != sorted(request.categories)
        or prefixes.has_leftovers(prefix)
        or not prefixes.records_match_state(prefix, state)
    ):
        return None
    names = tuple(sorted(p["name"] for p in state.get("packages", [])))
    plan = Plan(add=(), remove=(), change=(), keep=names, to_download=())
    return _result("up-to-date", request, prefix, plan, started)


def _refuse_mismatch(locked: LockedPlatform, check: MachineCheck, request: InstallRequest) -> None:
    """Refuse with every reason, in order (platform, CUDA, glibc, macOS, other), and every fix.

    A CUDA refusal may point at the project's cpu variant (``request.cpu_alternative``), never
    at another installer: conda-lock or conda would put the same CUDA environment on a machine
    that cannot run it.
    """
    if check.fits:
        return
    problems = check.mismatches
    reasons = "; ".join(p.reason for p in problems)
    fixes = list(dict.fromkeys(p.fix for p in problems))
    if request.cpu_alternative and any(p.kind == "cuda" for p in problems):
        fixes.append(request.cpu_alternative)
    count = f" ({len(problems)} reasons)" if len(problems) > 1 else ""
    raise LockfileMismatch(
        f"{locked.path.name} does not fit this machine{count}: {reasons}",
        "; ".join(fixes),
        reasons=tuple(p.to_json() for p in problems),
    )


def _refuse_pip(locked: LockedPlatform) -> None:
    """A lock that fits this machine but has pip packages, which this installer skips."""
    if locked.pip_packages:
        names = ", ".join(locked.pip_packages[:5])
        more = f" and {len(locked.pip_packages) - 5} more" if len(locked.pip_packages) > 5 else ""
        raise LockfileInvalid(
            f"{locked.path} fits this machine but has pip packages for {locked.platform} "
            f"({names}{more}), which setup-tool does not install",
            "install this lock with `conda-lock install`, or move those packages to conda ones",
        )


def _check_replaceable(prefix: Path) -> None:
    """The prefix can be swapped for a new environment: not someone else's, not a mount point."""
    if os.path.ismount(prefix):
        # The new environment is built beside the prefix and renamed over it; a mount point
        # cannot be renamed (EBUSY), nor a directory on another filesystem moved onto it.
        raise UsageError(
            f"{prefix} is a mount point; setup-tool replaces the environment directory as a "
            f"whole, which a mount point cannot be",
            f"use a directory inside it, e.g. --prefix {prefix / 'env'}",
        )
    if prefixes.is_foreign(prefix):
        raise _foreign(prefix)


def _check_writable(prefix: Path) -> None:
    parent = prefix.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SetupToolError(
            f"cannot create the environment at {prefix}: {existing} is a file, not a directory",
            "choose a --prefix in a directory you can write to",
        )
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise SetupToolError(
            f"cannot create the environment at {prefix}: {existing or parent} is not writable",
            "choose a --prefix in a directory you can write to",
        )


def _no_space(prefix: Path, request: InstallRequest) -> SetupToolError:
    return SetupToolError(
        f"no space left on the device while installing into {prefix}; the previous "
        f"environment is unchanged",
        "free some space (the package cache is in "
        f"{request.cache_root}; move it with SETUP_TOOL_CACHE) and run again",
    )


def _foreign(prefix: Path) -> UsageError:
    hint = "choose another --prefix: a new or empty directory, or an environment setup-tool made"
    if prefix.is_symlink() or not prefix.is_dir():
        kind = "a symbolic link" if prefix.is_symlink() else "a file, not a directory"
        return UsageError(f"{prefix} is {kind}; it was left untouched", hint)
    return UsageError(
        f"{prefix} exists and is not an environment setup-tool made; it was left untouched",
        f"{hint}, or remove that directory yourself if it is not needed",
    )


def _fetch(locked: LockedPlatform, cache: PackageCache, progress: Progress) -> list[Any]:
    progress.step(f"fetching and verifying {len(locked.packages)} packages")
    try:
        return fetch_all(locked.packages, cache, progress.downloads(len(locked.packages)))
    finally:
        progress.done()


def _build_and_swap(
    fetched: Sequence[Any],
    locked: LockedPlatform,
    request: InstallRequest,
    prefix: Path,
    progress: Progress,
) -> None:
    from setup_tool.install.link import link, rattler_errors

    staging = prefixes.staging_dir(prefix)
    progress.step(f"linking {len(fetched)} packages")
    on_linked = progress.linking(len(fetched))

    def linked_one() -> None:
        if on_linked is not None:
            on_linked()
        _crash_point("mid-link")

    try:
        try:
            link(
                fetched,
                staging=staging,
                final_prefix=prefix,
                platform=locked.platform,
                cache_dir=request.cache_root / "rattler",
                on_linked=linked_one,
            )
        except BaseException:
            prefixes.remove_tree_settled(staging)
            raise
        finally:
            progress.done()
        _crash_point("after-link")
        prefixes.write_state(staging, _state(locked, request))
        _crash_point("before-swap")
        prefixes.swap_into_place(staging, prefix)
        _crash_point("after-swap")
    except Exception as exc:
        if isinstance(exc, rattler_errors()):
            # py-rattler's message is a chain of "Caused by: ..." lines: make it one line.
            lines = (line.strip().removeprefix("Caused by: ") for line in str(exc).splitlines())
            detail = ": ".join(line for line in lines if line)
            if f"(os error {errno.ENOSPC})" in detail:  # how Rust's io::Error shows ENOSPC
                raise _no_space(prefix, request) from None
            raise SetupToolError(
                f"linking the environment failed: {detail}; the previous environment is unchanged",
                "run again; if it persists, clear the package cache "
                f"({request.cache_root}) and report the error",
            ) from None
        raise
    finally:
        # After a swap this is the old environment; after a failure, the partial new one.
        prefixes.remove_tree(staging)


def _state(locked: LockedPlatform, request: InstallRequest) -> dict[str, Any]:
    return {
        "lockfile": str(request.lockfile.absolute()),
        "lockfile_sha256": locked.file_sha256,  # the bytes parsed, not the file as it is now
        "platform": locked.platform,
        "categories": sorted(request.categories),
        "content_hash": locked.content_hash,
        "packages_hash": locked.packages_hash,
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "build": p.build,
                "sha256": p.sha256,
                "md5": p.md5,
                "url": p.url,
            }
            for p in sorted(locked.packages, key=lambda p: p.name)
        ],
        "installed_by": f"setup-tool {__version__}",
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _result(
    status: str,
    request: InstallRequest,
    prefix: Path,
    plan: Plan,
    started: float,
    downloaded: int = 0,
    reused: int = 0,
    *,
    warnings: Sequence[str] = (),
) -> InstallResult:
    return InstallResult(
        status=status,
        prefix=prefix,
        lockfile=request.lockfile,
        platform=request.platform,
        plan=plan,
        python=prefix_python(prefix),
        seconds=time.monotonic() - started,
        downloaded=downloaded,
        reused=reused,
        warnings=tuple(warnings),
    )


def _crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: SIGKILL this process at a named point.

    ``SETUP_TOOL_TEST_CRASH_AT=<name>`` is read only here and never set by setup-tool; the
    tests use it to prove that a kill at each point leaves the previous environment intact.
    """
    if os.environ.get("SETUP_TOOL_TEST_CRASH_AT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
