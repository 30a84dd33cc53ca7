"""``setup-tool lock``: spec → solve per platform → conda-lock file, and ``lock --check``.

``lock_variants`` solves every requested platform of every requested variant first and writes
files only when all of them succeeded; each file is written to a temporary file beside it and
renamed into place, so a failed or interrupted lock never leaves a broken or half-written
lockfile. A file whose content would not change is not touched. With ``platforms`` given, only
those are re-solved; the lockfile keeps the other platforms' packages and hashes as they were.

``check_lock`` solves nothing and needs no network: it recomputes conda-lock's content hash of
the spec for each platform and compares it with the one the lockfile records.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.errors import UsageError
from setup_tool.lock import condalock
from setup_tool.lock.channels import Channels, probe, resolve_channels
from setup_tool.lock.solve import SOLVE_TIMEOUT_S, Solved, SolveRequest, solve_all
from setup_tool.lock.spec import EnvSpec, load_spec
from setup_tool.paths import cache_dir as default_cache_dir
from setup_tool.paths import lockfile_path
from setup_tool.terminal import Terminal, escape
from setup_tool.variants import SUPPORTED_SUBDIRS, Variant

CUSTOM_VARIANT = "setup-tool.variant"
CUSTOM_VIRTUAL = "setup-tool.virtual-packages."  # + platform


@dataclass(frozen=True)
class PlatformLock:
    """One platform of a written lock. ``solved`` is False for a platform kept as it was."""

    platform: str
    packages: int
    pytorch: str | None  # "2.13.0 cuda129_mkl_py312_h22744d8_302"
    cuda_version: str | None  # the locked cuda-version package, if any
    virtual_packages: str
    seconds: float
    solved: bool = True


@dataclass(frozen=True)
class LockResult:
    """What ``lock_variant`` did for one variant."""

    variant: Variant
    path: Path
    platforms: tuple[PlatformLock, ...]
    channels: Channels
    cuda: str | None
    changed: bool  # False: the file already had exactly this content


@dataclass(frozen=True)
class PlatformStatus:
    """``current``, ``stale`` (hash differs), ``missing`` (not locked) or ``extra`` (dropped
    from the spec but still in the lock)."""

    platform: str
    state: str


@dataclass(frozen=True)
class CheckResult:
    """What ``check_lock`` found for one variant; ``refresh`` is the command that fixes it."""

    variant: Variant
    path: Path
    platforms: tuple[PlatformStatus, ...]
    refresh: str
    problem: str | None = None  # "missing" or "unreadable: ..." for the file as a whole

    @property
    def up_to_date(self) -> bool:
        return self.problem is None and all(p.state == "current" for p in self.platforms)

    @property
    def stale_platforms(self) -> tuple[str, ...]:
        return tuple(p.platform for p in self.platforms if p.state != "current")


# --- lock ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    spec: EnvSpec
    channels: Channels
    lock_spec: Any
    platforms: tuple[str, ...]  # the ones to solve
    cuda_flag: str | None


def lock_variants(
    root: Path,
    variants: Sequence[Variant],
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    terminal: Terminal | None = None,
    timeout_s: float = SOLVE_TIMEOUT_S,
) -> tuple[LockResult, ...]:
    """Lock each variant (all its platforms, or those of ``platforms`` it has) into
    ``envs/locks/<variant>.conda-lock.yml``; nothing is written unless every solve succeeds.

    ``channels`` replaces the spec's channels (else ``SETUP_TOOL_CHANNEL``, else the spec);
    ``cuda`` replaces the cuda variant's ``__cuda``. Raises ``SpecError``, ``UsageError``,
    ``ChannelUnreachable`` or ``SolveError``.
    """
    environ = os.environ if environ is None else environ
    terminal = terminal or Terminal(quiet=True)
    if cuda is not None and Variant.cuda not in variants:
        only = ", ".join(v.value for v in variants)
        raise UsageError(
            f"--cuda applies to the cuda variant only, not {only}",
            "drop --cuda, or lock with --variant cuda (or all)",
        )
    plans = _plan(
        root, variants, platforms=platforms, channels=channels, cuda=cuda, environ=environ
    )
    for url in dict.fromkeys(u for plan in plans for u in plan.channels.urls):
        probe([url])

    requests = []
    for plan in plans:
        terminal.step(
            f"locking {plan.spec.variant.value} for {', '.join(plan.platforms)} "
            f"from {escape(plan.channels.describe())}"
        )
        for platform in plan.platforms:
            requests.append(
                SolveRequest(
                    plan.spec.variant,
                    platform,
                    condalock.match_specs(plan.lock_spec, platform),
                    plan.spec.virtual_packages[platform],
                )
            )

    def report(solved: Solved) -> None:
        lock = _platform_lock(solved)
        terminal.info(
            f"    {solved.request.variant.value} {lock.platform}: {lock.packages} packages, "
            f"pytorch {lock.pytorch or 'none'} ({lock.seconds:.2f} s)"
        )

    # One solve for all variants: they share the channels' repodata, fetched once.
    by_channels: dict[tuple[str, ...], list[SolveRequest]] = {}
    channels_of = {plan.spec.variant: plan.channels for plan in plans}
    for request in requests:
        by_channels.setdefault(channels_of[request.variant].urls, []).append(request)
    solved: list[Solved] = []
    cache = cache_dir or default_cache_dir(environ)
    for group in by_channels.values():
        solved += solve_all(
            group,
            channels_of[group[0].variant],
            cache_dir=cache,
            timeout_s=timeout_s,
            on_solved=report,
        )

    # Render everything before writing anything.
    rendered = []
    for plan in plans:
        mine = [s for s in solved if s.request.variant is plan.spec.variant]
        rendered.append((plan, *_render(root, plan, mine)))
    results = []
    for plan, path, data, platform_locks in rendered:
        changed = _write_if_changed(path, data)
        results.append(
            LockResult(
                plan.spec.variant,
                path,
                platform_locks,
                plan.channels,
                plan.spec.cuda,
                changed,
            )
        )
    return tuple(results)


def lock_variant(root: Path, variant: Variant, **options: Any) -> LockResult:
    """``lock_variants`` for one variant (same keyword options)."""
    return lock_variants(root, [variant], **options)[0]


def _plan(
    root: Path,
    variants: Sequence[Variant],
    *,
    platforms: Sequence[str] | None,
    channels: Sequence[str] | None,
    cuda: str | None,
    environ: Mapping[str, str],
) -> list[_Plan]:
    for platform in platforms or ():
        if platform not in SUPPORTED_SUBDIRS:
            raise UsageError(
                f"unknown platform {platform!r} (valid: {', '.join(SUPPORTED_SUBDIRS)})",
                "pass --platform once per platform",
            )
    plans = []
    for variant in variants:
        variant_cuda = cuda if variant is Variant.cuda else None
        spec = load_spec(root, variant, cuda=variant_cuda)
        selected = tuple(p for p in spec.platforms if platforms is None or p in platforms)
        if platforms and len(variants) == 1:
            for platform in platforms:
                if platform not in spec.platforms:
                    raise UsageError(
                        f"the {variant.value} variant is not locked for {platform} "
                        f"(its platforms: {', '.join(spec.platforms)})",
                        f"drop --platform {platform}, or add it to envs/{variant.value}.yml",
                    )
        if not selected:
            continue
        chosen = resolve_channels(channels, spec.channels, "envs/base.yml", environ)
        # Without an override, conda-lock reads the files' channels itself (same hash as its own).
        lock_spec = condalock.lock_specification(spec, chosen.urls if chosen.overridden else None)
        plans.append(_Plan(spec, chosen, lock_spec, selected, variant_cuda))
    if not plans:
        raise UsageError(
            f"no variant among {', '.join(v.value for v in variants)} is locked for "
            f"{', '.join(platforms or ())}",
            "see the platforms listed in envs/cuda.yml, envs/mps.yml and envs/cpu.yml",
        )
    return plans


def _platform_lock(solved: Solved) -> PlatformLock:
    by_name = {r.name.normalized: r for r in solved.records}
    torch = by_name.get("pytorch")
    cuda = by_name.get("cuda-version")
    return PlatformLock(
        platform=solved.request.platform,
        packages=len(solved.records),
        pytorch=f"{torch.version} {torch.build}" if torch is not None else None,
        cuda_version=str(cuda.version) if cuda is not None else None,
        virtual_packages=" ".join(str(vp) for vp in solved.request.virtual_packages),
        seconds=solved.seconds,
    )


def _render(
    root: Path, plan: _Plan, solved: list[Solved]
) -> tuple[Path, bytes, tuple[PlatformLock, ...]]:
    spec = plan.spec
    path = lockfile_path(root, spec.variant)
    hashes = condalock.content_hashes(plan.lock_spec, spec.virtual_packages)
    packages = [
        condalock.locked_dependency(s.request.platform, record)
        for s in solved
        for record in s.records
    ]
    custom = {CUSTOM_VARIANT: spec.variant.value}
    locks = {s.request.platform: _platform_lock(s) for s in solved}
    for platform, lock in locks.items():
        custom[CUSTOM_VIRTUAL + platform] = lock.virtual_packages

    kept = [p for p in spec.platforms if p not in plan.platforms]
    recorded: dict[str, str] = {}
    if kept and path.exists():
        existing = condalock.read_lockfile(path)
        old_custom = existing.metadata.custom_metadata or {}
        kept = [p for p in kept if p in existing.metadata.platforms]
        if kept and list(existing.metadata.channels) != list(plan.lock_spec.channels):
            raise UsageError(
                f"{path.name} was locked from other channels; its other platforms "
                f"({', '.join(kept)}) cannot be kept",
                f"relock every platform: drop --platform, e.g. "
                f"{refresh_command(spec.variant, None, plan.channels, plan.cuda_flag)}",
            )
        for platform in kept:
            kept_packages = [p for p in existing.package if p.platform == platform]
            packages += kept_packages
            recorded[platform] = existing.metadata.content_hash.get(platform, "")
            locks[platform] = PlatformLock(
                platform,
                len(kept_packages),
                next(
                    (f"{p.version} {p.build}" for p in kept_packages if p.name == "pytorch"), None
                ),
                next((p.version for p in kept_packages if p.name == "cuda-version"), None),
                old_custom.get(CUSTOM_VIRTUAL + platform, ""),
                0.0,
                solved=False,
            )
            custom[CUSTOM_VIRTUAL + platform] = old_custom.get(CUSTOM_VIRTUAL + platform, "")
    else:
        kept = []

    platforms = [p for p in spec.platforms if p in plan.platforms or p in kept]
    lockfile = condalock.build_lockfile(
        packages=packages,
        lock_spec=plan.lock_spec,
        platforms=platforms,
        hashes={p: recorded.get(p, hashes[p]) for p in platforms},
        sources=[os.path.relpath(f, path.parent) for f in spec.files],
        custom={k: v for k, v in sorted(custom.items()) if v},
    )
    header = _header(spec, plan, path, platforms, locks)
    ordered = tuple(locks[p] for p in platforms)
    return path, condalock.render(lockfile, header), ordered


def _header(
    spec: EnvSpec,
    plan: _Plan,
    path: Path,
    platforms: Sequence[str],
    locks: Mapping[str, PlatformLock],
) -> str:
    variant = spec.variant.value
    files = " + ".join(f"envs/{f.name}" for f in spec.files)
    width = max(len(p) for p in platforms)
    lines = [
        "This is a conda-lock file, written by `setup-tool lock` with conda-lock's writer.",
        "DO NOT EDIT: change the spec and relock.",
        "",
        f"Variant {variant} = {files}, solved per platform with these virtual packages:",
        *(f"  {p.ljust(width)}  {locks[p].virtual_packages}" for p in platforms),
        "",
        f"Relock:            {refresh_command(spec.variant, None, plan.channels, plan.cuda_flag)}",
        f"Check it is fresh: {check_command(spec.variant, plan.channels, plan.cuda_flag)}",
        f"Install it:        setup-tool install --variant {variant}",
        f"   or with conda-lock: conda-lock install -n ENV {path.name}",
    ]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def _flags(channels: Channels | None, cuda: str | None) -> list[str]:
    flags = []
    if channels is not None and channels.source == "--channel":
        for url in channels.urls:
            flags += ["--channel", url]
    if cuda:
        flags += ["--cuda", cuda]
    return flags


def refresh_command(
    variant: Variant,
    platforms: Sequence[str] | None,
    channels: Channels | None = None,
    cuda: str | None = None,
) -> str:
    """The ``setup-tool lock`` command that relocks ``variant`` (only ``platforms`` if given)."""
    argv = ["setup-tool", "lock", "--variant", variant.value]
    for platform in platforms or ():
        argv += ["--platform", platform]
    return shlex.join(argv + _flags(channels, cuda))


def check_command(variant: Variant, channels: Channels | None, cuda: str | None) -> str:
    argv = ["setup-tool", "lock", "--variant", variant.value, "--check"]
    return shlex.join(argv + _flags(channels, cuda))


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` (temp file + fsync + rename); False if equal."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o644)  # mkstemp's 0600 would differ from the files beside it
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


# --- check --------------------------------------------------------------------------------------


def check_locks(
    root: Path,
    variants: Sequence[Variant],
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[CheckResult, ...]:
    """``check_lock`` for each variant that has any of ``platforms`` (all when None); the
    arguments mean what they mean for ``lock_variants``."""
    environ = os.environ if environ is None else environ
    if cuda is not None and Variant.cuda not in variants:
        raise UsageError(
            f"--cuda applies to the cuda variant only, not {', '.join(v.value for v in variants)}",
            "drop --cuda, or check with --variant cuda (or all)",
        )
    plans = _plan(
        root, variants, platforms=platforms, channels=channels, cuda=cuda, environ=environ
    )
    return tuple(_check(root, plan, filtered=platforms is not None) for plan in plans)


def check_lock(
    root: Path,
    variant: Variant,
    *,
    platforms: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    cuda: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CheckResult:
    """Whether ``envs/locks/<variant>.conda-lock.yml`` matches the spec, per platform.

    No solve and no network. A platform is current when the hash conda-lock computes for the
    spec (with the same channels and virtual packages as ``lock``) is the one recorded.
    """
    return check_locks(
        root, [variant], platforms=platforms, channels=channels, cuda=cuda, environ=environ
    )[0]


def _check(root: Path, plan: _Plan, *, filtered: bool) -> CheckResult:
    variant = plan.spec.variant
    path = lockfile_path(root, variant)

    def result(states: dict[str, str], problem: str | None = None) -> CheckResult:
        stale = [p for p, s in states.items() if s != "current"]
        partial = (
            stale
            and len(stale) < len(plan.spec.platforms)
            and "extra" not in states.values()
            and problem is None
        )
        refresh = refresh_command(
            variant, stale if partial else None, plan.channels, plan.cuda_flag
        )
        return CheckResult(
            variant,
            path,
            tuple(PlatformStatus(p, s) for p, s in states.items()),
            refresh,
            problem,
        )

    if not path.exists():
        return result(dict.fromkeys(plan.platforms, "missing"), "missing")
    try:
        lock = condalock.read_lockfile(path)
    except Exception as exc:
        return result(dict.fromkeys(plan.platforms, "stale"), f"unreadable: {exc}")
    current = condalock.current_hashes(plan.lock_spec, plan.spec.virtual_packages)
    locked = {p.platform for p in lock.package}
    states: dict[str, str] = {}
    for platform in plan.platforms:
        if platform not in lock.metadata.platforms or platform not in locked:
            states[platform] = "missing"
        elif lock.metadata.content_hash.get(platform) not in current[platform]:
            states[platform] = "stale"
        else:
            states[platform] = "current"
    if not filtered:
        for platform in lock.metadata.platforms:
            if platform not in plan.spec.platforms:
                states[platform] = "extra"
    return result(states)
