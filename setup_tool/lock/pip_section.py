"""Locking a spec's ``- pip:`` section for each platform, after its conda solve.

For every platform of a plan whose spec has pip requirements there: uv resolves them for that
platform's Python and virtual packages, with the conda packages fixed (``uv.py``); each wheel's
dependencies come from its metadata (``wheel_metadata.py``); the result is conda-lock's
``manager: pip`` entries (name, version, url, sha256, dependencies, platform, category main),
as conda-lock's own pip solve writes them. Platforms run concurrently (uv is a subprocess).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.errors import SpecError, UsageError
from setup_tool.lock import condalock, pypi_names, wheel_metadata
from setup_tool.lock.pip_target import PipTarget
from setup_tool.lock.plan import LockPlan
from setup_tool.lock.solve import Solved
from setup_tool.lock.torch_source import WHEELS
from setup_tool.lock.uv import PipSolveRequest, ResolvedWheel, compile_wheels
from setup_tool.variants import Variant

MAX_PARALLEL = 4


@dataclass(frozen=True)
class PipLocked:
    """One platform's pip entries (conda-lock ``LockedDependency`` objects) and the seconds."""

    variant: Variant
    platform: str
    packages: tuple[Any, ...]
    seconds: float


def pip_requirements(plan: LockPlan, platform: str) -> tuple[str, ...]:
    """The pip requirements that apply to ``platform`` (conda-lock's parse says which): the
    spec's own text, or for the ones setup-tool adds (``--torch-from wheels``) their parse."""
    deps = [d for d in plan.lock_spec.dependencies[platform] if d.manager == "pip"]
    return tuple(plan.spec.pip.get(d.name) or _requirement_text(d) for d in deps)


def _requirement_text(dep: Any) -> str:
    extras = f"[{','.join(dep.extras)}]" if dep.extras else ""
    version = dep.version or ""
    if version and version[0] not in "<>=!~":
        version = f"=={version}"
    return f"{dep.name}{extras}{version}"


def lock_pip_sections(
    plans: Sequence[LockPlan],
    solved: Sequence[Solved],
    *,
    cache_dir: Path,
    on_locked: Callable[[PipLocked], None] | None = None,
) -> dict[tuple[Variant, str], PipLocked]:
    """The pip entries of every (variant, platform) with pip requirements."""
    jobs = []
    for plan in plans:
        for result in solved:
            if result.request.variant is plan.spec.variant and pip_requirements(
                plan, result.request.platform
            ):
                jobs.append((plan, result))
    if not jobs:
        return {}
    mapping = pypi_names.mapping_file(cache_dir)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool:
        futures = [
            pool.submit(_lock_one, plan, result, cache_dir, mapping) for plan, result in jobs
        ]
        locked = {}
        for future in futures:  # in request order, so the first failure is the same every run
            done = future.result()
            if on_locked is not None:
                on_locked(done)
            locked[(done.variant, done.platform)] = done
    return locked


def _lock_one(plan: LockPlan, solved: Solved, cache_dir: Path, mapping: Path) -> PipLocked:
    platform = solved.request.platform
    python = next((r for r in solved.records if r.name.normalized == "python"), None)
    if python is None:
        raise SpecError(
            f"envs/{plan.spec.variant.value}.yml",
            f"the pip section needs python in the conda dependencies ({platform} has none)",
            hint="add `- python=3.12` (or the version you want) to envs/base.yml",
        )
    assert plan.pip_indexes is not None  # make_plans sets them for a spec with pip packages
    target = PipTarget(platform, str(python.version), solved.request.virtual_packages)
    request = PipSolveRequest(
        label=f"{plan.spec.variant.value} {platform}",
        requirements=pip_requirements(plan, platform),
        target=target,
        indexes=plan.pip_indexes,
        conda_provided=pypi_names.conda_provided(solved.records, mapping),
    )
    if plan.torch_from == WHEELS and "torch" in request.conda_provided:
        raise _conda_torch_error(plan, solved)
    wheels, seconds = compile_wheels(request, cache_dir=cache_dir)
    packages = _entries(request, wheels)
    return PipLocked(plan.spec.variant, platform, packages, seconds)


def _conda_torch_error(plan: LockPlan, solved: Solved) -> UsageError:
    """With torch from wheels, a conda package that needs conda's pytorch would bring it back."""
    needs = sorted(
        r.name.normalized
        for r in solved.records
        if any(d.split()[0] == "pytorch" for d in r.depends)
    )
    return UsageError(
        f"torch comes from wheels, but conda's pytorch is in the {plan.spec.variant.value} lock "
        f"for {solved.request.platform}" + (f", needed by {', '.join(needs)}" if needs else ""),
        "move the packages that need torch to the `- pip:` section, or lock with "
        "--torch-from conda-forge",
    )


def _entries(request: PipSolveRequest, wheels: Sequence[ResolvedWheel]) -> tuple[Any, ...]:
    """conda-lock entries for the wheels, each with the dependencies its metadata declares."""
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        requires = dict(
            zip(
                [w.name for w in wheels],
                pool.map(lambda w: wheel_metadata.requires_dist(w.url, w.sha256), wheels),
                strict=True,
            )
        )
    markers = request.target.markers()
    extras = wheel_metadata.requested_extras(request.requirements, markers)
    for _ in range(len(wheels)):  # extras asked by packages for other packages, to a fixed point
        before = {k: set(v) for k, v in extras.items()}
        for name, lines in requires.items():
            wanted = [line for line in lines if _applies(line, markers, extras.get(name, set()))]
            for other, more in wheel_metadata.requested_extras(wanted, markers).items():
                extras.setdefault(other, set()).update(more)
        if extras == before:
            break
    return tuple(
        condalock.pip_locked_dependency(
            request.target.platform,
            wheel,
            wheel_metadata.dependencies(requires[wheel.name], markers, extras.get(wheel.name, ())),
        )
        for wheel in wheels
    )


def _applies(line: str, markers: dict[str, str], extras: set[str]) -> bool:
    from packaging.requirements import Requirement

    marker = Requirement(line).marker
    return marker is None or any(marker.evaluate({**markers, "extra": e}) for e in ("", *extras))
