"""``setup-tool install``: a conda-lock file → a verified, atomic environment at a prefix.

    read lock (lockread.py, wheels.py) ─► machine check (compat.py, wheelcompat.py)
      ─► plan (plan.py) ─► fetch + sha256, conda packages and wheels (download.py)
      ─► link into staging (link.py) ─► wheels into staging (wheelinstall.py)
      ─► state file, atomic swap (prefix.py)

Nothing is downloaded before the machine check passes, nothing is linked before every
package's and wheel's hash matches, and the live prefix only ever changes by one atomic swap.
The same lock into the same prefix is a no-op ("up to date"). ``prefix.py`` documents the
design.
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
from setup_tool.errors import HashMismatch, LockfileMismatch, SetupToolError, UsageError
from setup_tool.install import prefix as prefixes
from setup_tool.install import sitepackages
from setup_tool.install.compat import MachineCheck, MachineFacts, assess
from setup_tool.install.download import (
    Fetched,
    PackageCache,
    changed_since_verified,
    fetch_all,
    local_sizes,
)
from setup_tool.install.lockread import LockedPackage, LockedPlatform, read_locked_platform
from setup_tool.install.plan import Plan, WheelPlan, make_plan
from setup_tool.install.progress import Progress
from setup_tool.install.request import InstallRequest, install_request, machine_facts
from setup_tool.install.wheels import LockedWheel
from setup_tool.interpreter import prefix_python

__all__ = [
    "InstallRequest",
    "InstallResult",
    "MachineFacts",
    "install",
    "install_request",
    "machine_facts",
]

# Keys are only added within a version; a removal or a change of meaning bumps it.
JSON_SCHEMA_VERSION = 1
# Why a dry run's plan may lack sizes (docs/install.md, the `--dry-run` paragraph).
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
        """``install --json`` (schema version 1, docs/install.md "JSON output")."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
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
    warnings = (*locked.warnings, *check.warnings)
    for warning in warnings:
        progress.warning(warning)
    prefix = _absolute(request.prefix)
    cache = PackageCache(request.cache_root)

    if request.dry_run:
        _check_replaceable(prefix)
        plan = _current_plan(locked, prefix, cache, sizes=True)
        return _result("dry-run", request, prefix, plan, started, warnings=warnings)

    _check_replaceable(prefix)  # before the lock file is made next to it
    _check_writable(prefix)
    with prefixes.prefix_lock(prefix, on_wait=progress.step):
        prefixes.recover(prefix, log=progress.step)
        if prefixes.is_foreign(prefix):
            raise _foreign(prefix)
        plan = _current_plan(locked, prefix, cache)
        if plan.up_to_date:
            # Same packages from a lockfile whose bytes changed (relocked, reformatted):
            # record it, so the next run takes the fast path.
            prefixes.write_state(prefix, _state(locked, request, prefix))
            return _result("up-to-date", request, prefix, plan, started, warnings=warnings)
        cache.prepare()  # only now: an up-to-date prefix does not need a usable cache
        try:
            fetched, wheels = _fetch(locked, cache, progress, request)
            _crash_point("after-fetch")
            _build_and_swap(fetched, wheels, locked, request, prefix, progress)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _no_space(prefix, request) from None
            raise
        everything: list[Fetched[Any]] = [*fetched, *wheels]
        downloaded = sum(1 for f in everything if not f.cached)
        return _result(
            "installed",
            request,
            prefix,
            plan,
            started,
            downloaded,
            len(everything) - downloaded,
            warnings=warnings,
        )


def _current_plan(
    locked: LockedPlatform, prefix: Path, cache: PackageCache, *, sizes: bool = False
) -> Plan:
    """The plan against what the prefix holds (nothing, when it is not an environment yet);
    with ``sizes``, what is known of the download's size without asking the channel."""
    ours = prefixes.read_state(prefix) is not None
    missing = [p for p in locked.packages if not cache.has(p)]
    missing_wheels = [w for w in locked.wheels if not cache.has(w)]
    return make_plan(
        locked,
        prefixes.installed_records(prefix) if ours else {},
        cache,
        sizes=local_sizes(missing) if sizes else None,
        size_note=UNKNOWN_SIZES_NOTE if sizes else None,
        current_wheels=_pip_installed(locked, prefix) if ours else {},
        wheel_sizes=local_sizes(missing_wheels) if sizes else None,
    )


def _pip_installed(locked: LockedPlatform, prefix: Path) -> dict[str, Any]:
    site = _site_packages(locked, prefix)
    return sitepackages.pip_installed(prefix, site) if site is not None else {}


def _site_packages(locked: LockedPlatform, root: Path) -> Path | None:
    from setup_tool.install.wheelinstall import site_packages

    python = locked.python
    return root / site_packages(python, locked.platform) if python is not None else None


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
        or not _dist_infos_match_state(prefix, state)
    ):
        return None
    names = tuple(sorted(p["name"] for p in state.get("packages", [])))
    wheels = tuple(sorted(w["name"] for w in state.get("wheels", [])))
    plan = Plan(
        add=(), remove=(), change=(), keep=names, to_download=(), pip=WheelPlan(keep=wheels)
    )
    return _result("up-to-date", request, prefix, plan, started)


def _dist_infos_match_state(prefix: Path, state: dict[str, Any]) -> bool:
    """site-packages still has exactly the ``.dist-info`` directories it had after the
    install (one directory listing): a wheel removed or a package added by hand fails it.
    A state file written before setup-tool recorded them is taken as it is."""
    if "dist_infos" not in state:
        return True
    recorded = state.get("site_packages")
    present = sitepackages.dist_info_names(prefix / recorded) if recorded else []
    return bool(present == state["dist_infos"])


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


def _fetch(
    locked: LockedPlatform, cache: PackageCache, progress: Progress, request: InstallRequest
) -> tuple[list[Fetched[LockedPackage]], list[Fetched[LockedWheel]]]:
    """Every conda package and wheel, verified in the cache: one batch, one progress bar."""
    wanted: list[LockedPackage | LockedWheel] = [*locked.packages, *locked.wheels]
    pip = f" and {len(locked.wheels)} pip packages" if locked.wheels else ""
    progress.step(f"fetching and verifying {len(locked.packages)} packages{pip}")
    try:
        reporter = progress.downloads(len(wanted))
        fetched = fetch_all(wanted, cache, reporter, verify_all=request.verify_cache)
    except HashMismatch as exc:
        if not request.refresh_hint:  # a --lockfile: only the tool that made it relocks it
            raise
        raise HashMismatch(exc.message, f"{exc.hint}: {request.refresh_hint}") from None
    finally:
        progress.done()
    conda = [
        Fetched(f.package, f.path, f.cached, f.sha256, f.identity)
        for f in fetched
        if _is_conda(f.package)
    ]
    wheels = [
        Fetched(f.package, f.path, f.cached, f.sha256, f.identity)
        for f in fetched
        if isinstance(f.package, LockedWheel)
    ]
    return conda, wheels  # type: ignore[return-value]  # narrowed by the filters above


def _is_conda(package: LockedPackage | LockedWheel) -> bool:
    return isinstance(package, LockedPackage)


def _build_and_swap(
    fetched: Sequence[Fetched[LockedPackage]],
    wheels: Sequence[Fetched[LockedWheel]],
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
                stamps=PackageCache(request.cache_root).stamps,
                verify_cache=request.verify_cache,
                on_linked=linked_one,
            )
        except BaseException:
            prefixes.remove_tree_settled(staging)
            raise
        finally:
            progress.done()
        _crash_point("after-link")
        _install_wheels(wheels, locked, staging, prefix, progress)
        _refuse_changed_sources([*fetched, *wheels])
        prefixes.write_state(staging, _state(locked, request, staging))
        _crash_point("before-swap")
        prefixes.swap_into_place(staging, prefix)
        _crash_point("after-swap")
    except Exception as exc:
        if isinstance(exc, rattler_errors()):
            raise _link_failed(exc, prefix, request) from None
        raise
    finally:
        # After a swap this is the old environment; after a failure, the partial new one.
        prefixes.remove_tree(staging)


def _refuse_changed_sources(fetched: Sequence[Fetched[Any]]) -> None:
    """A ``file://`` package is hashed where it lies, then read by py-rattler or the wheel
    installer: if the file is not the one hashed any more (rewritten meanwhile), what was
    installed is unverified."""
    changed = changed_since_verified(fetched)
    if changed:
        raise HashMismatch(
            f"{changed[0].path} changed while it was being installed, after its hash was "
            f"checked; the previous environment is unchanged",
            "run again once nothing is writing to the channel",
        )


def _link_failed(exc: Exception, prefix: Path, request: InstallRequest) -> SetupToolError:
    """py-rattler's message is a chain of "Caused by: ..." lines: one line of it."""
    lines = (line.strip().removeprefix("Caused by: ") for line in str(exc).splitlines())
    detail = ": ".join(line for line in lines if line)
    if f"(os error {errno.ENOSPC})" in detail:  # how Rust's io::Error shows ENOSPC
        return _no_space(prefix, request)
    return SetupToolError(
        f"linking the environment failed: {detail}; the previous environment is unchanged",
        "run again; if it persists, clear the package cache "
        f"({request.cache_root}) and report the error",
    )


def _install_wheels(
    wheels: Sequence[Fetched[LockedWheel]],
    locked: LockedPlatform,
    staging: Path,
    prefix: Path,
    progress: Progress,
) -> None:
    """The pip packages, into the linked staging tree (see wheelinstall.py)."""
    if not wheels:
        return
    from setup_tool.install.wheelinstall import install_wheels

    python = locked.python
    assert python is not None  # the machine check refuses wheels without a Python
    progress.step(f"installing {len(wheels)} pip packages")
    on_installed = progress.wheels(len(wheels))

    def installed_one() -> None:
        if on_installed is not None:
            on_installed()
        _crash_point("mid-wheels")

    try:
        install_wheels(
            wheels,
            staging=staging,
            final_prefix=prefix,
            python=python,
            platform=locked.platform,
            on_installed=installed_one,
        )
    finally:
        progress.done()
    _crash_point("after-wheels")


def _state(locked: LockedPlatform, request: InstallRequest, root: Path) -> dict[str, Any]:
    """What the environment at ``root`` (staging, or the live prefix) was installed from."""
    site = _site_packages(locked, root)
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
        "wheels": [
            {"name": w.name, "version": w.version, "sha256": w.sha256, "url": w.url}
            for w in sorted(locked.wheels, key=lambda w: w.key)
        ],
        # For the no-op check: every .dist-info there (conda's too), so a wheel removed or a
        # package pip-installed by hand is seen without parsing anything.
        "site_packages": str(site.relative_to(root)) if site is not None else None,
        "dist_infos": sitepackages.dist_info_names(site) if site is not None else [],
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
