"""Solving each platform with py-rattler, given that platform's virtual packages.

Every (variant, platform) pair is one ``rattler.solve`` over ``[platform, noarch]`` with the
virtual packages from the spec (``EnvSpec.virtual_packages``), never the locking machine's: a
lock for linux-64 made on a Mac must come out the same as one made on a GPU server. All pairs
run concurrently on one ``Gateway``, which fetches each channel subdir once and caches repodata
under ``<cache>/repodata``. Solving is deterministic: the same specs, virtual packages and
repodata give the same records.

Failures become errors a user can act on: the solver's explanation (``SolveError``, trimmed to
the lines that name the conflict) or the channel that could not be read (``ChannelUnreachable``).
The whole solve is bounded by ``timeout_s`` (a stalled transfer must not hang a lock forever).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.errors import ChannelUnreachable, SolveError
from setup_tool.lock.channels import UNREACHABLE_HINT, Channels, channel_url, display
from setup_tool.variants import Variant
from setup_tool.virtual_packages import VirtualPackage

log = logging.getLogger(__name__)

SOLVE_TIMEOUT_S = 600.0
EXPLANATION_MAX_LINES = 24
# Lines of py-rattler's explanation tree that say *why* (a missing candidate or a clash).
_CONFLICT = re.compile(r"no candidates were found|conflicts with|No candidates were found", re.I)


@dataclass(frozen=True)
class SolveRequest:
    """One platform of one variant: the match specs and the virtual packages it is solved with."""

    variant: Variant
    platform: str
    specs: tuple[str, ...]
    virtual_packages: tuple[VirtualPackage, ...]


@dataclass(frozen=True)
class Solved:
    """The records py-rattler chose (``RepoDataRecord``), sorted by name."""

    request: SolveRequest
    records: tuple[Any, ...]
    seconds: float


def solve_all(
    requests: Sequence[SolveRequest],
    channels: Channels,
    *,
    cache_dir: Path,
    timeout_s: float = SOLVE_TIMEOUT_S,
    on_solved: Callable[[Solved], None] | None = None,
) -> list[Solved]:
    """Solve every request (concurrently); ``on_solved`` is called as each one finishes."""
    try:
        solved = asyncio.run(
            asyncio.wait_for(_solve_all(requests, channels, cache_dir, on_solved), timeout_s)
        )
    except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
        raise ChannelUnreachable(
            f"no complete answer from {channels.describe()} within {timeout_s:g} s",
            UNREACHABLE_HINT,
        ) from None
    order = {(r.variant, r.platform): i for i, r in enumerate(requests)}
    return sorted(solved, key=lambda s: order[(s.request.variant, s.request.platform)])


async def _solve_all(
    requests: Sequence[SolveRequest],
    channels: Channels,
    cache_dir: Path,
    on_solved: Callable[[Solved], None] | None,
) -> list[Solved]:
    from rattler import Gateway

    gateway = Gateway(cache_dir=cache_dir / "repodata")
    tasks = [asyncio.create_task(_solve_one(r, channels, gateway)) for r in requests]
    results = []
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                solved = await next_done
            except (SolveError, ChannelUnreachable):
                continue  # reported below, in request order, once every solve has ended
            if on_solved is not None:
                on_solved(solved)
            results.append(solved)
    finally:
        for task in tasks:
            task.cancel()
    for task in tasks:  # the first failure in request order: the same error on every run
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    return results


async def _solve_one(request: SolveRequest, channels: Channels, gateway: Any) -> Solved:
    import rattler
    from rattler.exceptions import SolverError

    start = time.perf_counter()
    platforms: list[Any] = [request.platform, "noarch"]  # py-rattler types them as Literals
    try:
        records = await rattler.solve(
            sources=list(channels.urls),
            specs=[rattler.MatchSpec(s) for s in request.specs],
            platforms=platforms,
            virtual_packages=[vp.to_rattler() for vp in request.virtual_packages],
            gateway=gateway,
        )
    except SolverError as exc:
        log.debug("py-rattler's explanation for %s:\n%s", request.platform, exc)
        virtual = " ".join(str(vp) for vp in request.virtual_packages)
        raise SolveError(
            f"the {request.variant.value} spec cannot be solved for {request.platform} "
            f"(with {virtual}):",
            trim_explanation(str(exc)),
            hint=_solve_hint(request),
        ) from None
    except Exception as exc:  # py-rattler's GatewayError, FetchRepoDataError, IoError, ...
        raise _channel_error(exc, channels) from None
    records = sorted(records, key=lambda r: r.name.normalized)
    return Solved(request, tuple(records), time.perf_counter() - start)


def trim_explanation(text: str, max_lines: int = EXPLANATION_MAX_LINES) -> str:
    """The solver's tree, cut to the lines on a path to a conflict, at most ``max_lines``."""
    text = text.strip()
    prefix = "Cannot solve the request because of: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip(" │├└─"))

    # The root and its direct children (the requests that clash) always stay.
    top = min((depth(line) for line in lines[1:]), default=0)
    keep: set[int] = {0} | {i for i, line in enumerate(lines) if i and depth(line) == top}
    for i, line in enumerate(lines):
        if not _CONFLICT.search(line):
            continue
        keep.add(i)
        level = depth(line)
        for j in range(i - 1, -1, -1):  # its ancestors: the nearest lines less indented
            if depth(lines[j]) < level:
                keep.add(j)
                level = depth(lines[j])
    if not any(_CONFLICT.search(line) for line in lines):  # keep the top of the tree instead
        keep = set(range(min(len(lines), max_lines)))
    kept = [lines[i] for i in sorted(keep)]
    cut = len(kept) - max_lines
    if cut > 0:
        kept = [*kept[:max_lines], f"… {cut} more lines (run with -v for the solver's full text)"]
    return "\n".join(kept)


def _solve_hint(request: SolveRequest) -> str:
    files = f"envs/base.yml or envs/{request.variant.value}.yml"
    if request.variant is Variant.cuda:
        return (
            f"loosen the pins in {files}, or target another driver CUDA with --cuda X.Y; "
            "check that the channel has builds for this platform"
        )
    return f"loosen the pins in {files}; check that the channel has builds for this platform"


def _channel_error(exc: Exception, channels: Channels) -> ChannelUnreachable:
    """Name the channel a py-rattler fetch error is about, with the innermost cause."""
    text = str(exc).strip()
    log.debug("py-rattler: %s", text)
    culprit = next(
        (c for c in channels.urls if channel_url(c).rstrip("/") in text),
        channels.urls[0] if len(channels.urls) == 1 else None,
    )
    causes = [line.removeprefix("Caused by: ").strip() for line in text.splitlines()]
    cause = causes[-1] if causes else type(exc).__name__
    name = display(culprit) if culprit else ", ".join(display(c) for c in channels.urls)
    return ChannelUnreachable(f"cannot read channel {name}: {cause}", UNREACHABLE_HINT)
