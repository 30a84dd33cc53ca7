"""A variant's lockfile: its bytes from the solves (plus the platforms kept as they were), and
the atomic write.

The bytes are a header comment (how to relock, check and install) and conda-lock's writer
output. With ``--platform``, the platforms not re-solved keep their packages and content hash
from the existing file; that is refused when the file was locked from other channels, since one
lockfile has one channel list.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setup_tool.errors import UsageError
from setup_tool.lock import condalock
from setup_tool.lock.metadata import CUSTOM_VARIANT, CUSTOM_VIRTUAL, custom_entries
from setup_tool.lock.pip_section import PipLocked
from setup_tool.lock.plan import LockPlan, check_for, refresh_for
from setup_tool.lock.results import PlatformLock
from setup_tool.lock.solve import Solved
from setup_tool.paths import lockfile_path


@dataclass(frozen=True)
class RenderedLock:
    """A lockfile ready to be written: where, its bytes, and what each platform holds."""

    plan: LockPlan
    path: Path
    data: bytes
    platforms: tuple[PlatformLock, ...]


@dataclass
class _Kept:
    """The platforms of an existing lockfile that this lock leaves as they were."""

    packages: list[Any] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    locks: dict[str, PlatformLock] = field(default_factory=dict)


def platform_lock(solved: Solved, pip: PipLocked | None = None) -> PlatformLock:
    """The summary of one solved platform (package counts, pytorch build, cuda-version)."""
    by_name = {r.name.normalized: r for r in solved.records}
    torch = by_name.get("pytorch")
    cuda = by_name.get("cuda-version")
    pip_torch = next((p for p in pip.packages if p.name == "torch"), None) if pip else None
    pytorch = f"{torch.version} {torch.build}" if torch is not None else None
    if pip_torch is not None:
        pytorch = f"{pip_torch.version} (pip)"
    return PlatformLock(
        platform=solved.request.platform,
        packages=len(solved.records),
        pytorch=pytorch,
        cuda_version=str(cuda.version) if cuda is not None else None,
        virtual_packages=" ".join(str(vp) for vp in solved.request.virtual_packages),
        seconds=solved.seconds + (pip.seconds if pip else 0.0),
        pip_packages=len(pip.packages) if pip else 0,
    )


def render_lock(
    root: Path,
    plan: LockPlan,
    solved: Sequence[Solved],
    pip: Mapping[str, PipLocked] | None = None,
) -> RenderedLock:
    """The lockfile for ``plan`` from its solves and pip sections (per platform), and the
    platforms kept from the old file."""
    spec = plan.spec
    pip = pip or {}
    path = lockfile_path(root, spec.variant)
    hashes = condalock.content_hashes(plan.lock_spec, spec.virtual_packages)
    packages = [
        condalock.locked_dependency(s.request.platform, record)
        for s in solved
        for record in s.records
    ]
    packages += [entry for locked in pip.values() for entry in locked.packages]
    locks = {s.request.platform: platform_lock(s, pip.get(s.request.platform)) for s in solved}
    kept = _kept_platforms(path, plan)
    locks.update(kept.locks)
    platforms = [p for p in spec.platforms if p in locks]
    custom = {
        CUSTOM_VARIANT: spec.variant.value,
        **custom_entries(plan.channels, plan.pip_indexes, plan.torch_from),
    }
    for platform in platforms:
        custom[CUSTOM_VIRTUAL + platform] = locks[platform].virtual_packages
    lockfile = condalock.build_lockfile(
        packages=packages + kept.packages,
        lock_spec=plan.lock_spec,
        platforms=platforms,
        hashes={p: kept.hashes.get(p, hashes[p]) for p in platforms},
        sources=[os.path.relpath(f, path.parent) for f in spec.files],
        custom={k: v for k, v in sorted(custom.items()) if v},
    )
    header = _header(plan, path, platforms, locks)
    data = condalock.render(lockfile, header)
    return RenderedLock(plan, path, data, tuple(locks[p] for p in platforms))


def _kept_platforms(path: Path, plan: LockPlan) -> _Kept:
    """The spec's platforms this lock does not solve, as the existing file has them."""
    spec = plan.spec
    kept = _Kept()
    wanted = [p for p in spec.platforms if p not in plan.platforms]
    if not wanted or not path.exists():
        return kept
    existing = condalock.read_lockfile(path)
    old_custom = existing.metadata.custom_metadata or {}
    wanted = [p for p in wanted if p in existing.metadata.platforms]
    if wanted and list(existing.metadata.channels) != list(plan.lock_spec.channels):
        raise UsageError(
            f"{path.name} was locked from other channels; its other platforms "
            f"({', '.join(wanted)}) cannot be kept",
            f"relock every platform: drop --platform, e.g. {refresh_for(plan)}",
        )
    for platform in wanted:
        packages = [p for p in existing.package if p.platform == platform]
        conda = [p for p in packages if p.manager == "conda"]
        kept.packages += packages
        kept.hashes[platform] = existing.metadata.content_hash.get(platform, "")
        kept.locks[platform] = PlatformLock(
            platform,
            len(conda),
            next((f"{p.version} {p.build}" for p in conda if p.name == "pytorch"), None)
            or next((f"{p.version} (pip)" for p in packages if p.name == "torch"), None),
            next((p.version for p in conda if p.name == "cuda-version"), None),
            old_custom.get(CUSTOM_VIRTUAL + platform, ""),
            0.0,
            solved=False,
            pip_packages=len(packages) - len(conda),
        )
    return kept


def _header(
    plan: LockPlan,
    path: Path,
    platforms: Sequence[str],
    locks: Mapping[str, PlatformLock],
) -> str:
    spec = plan.spec
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
        f"Relock:            {refresh_for(plan)}",
        f"Check it is fresh: {check_for(plan)}",
        f"Install it:        setup-tool install --variant {variant}",
        f"   or with conda-lock: conda-lock install -n ENV {path.name}",
    ]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def write_if_changed(path: Path, data: bytes) -> bool:
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
