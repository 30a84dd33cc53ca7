"""``setup-tool lock``: render ``setup_tool.lock``'s results and map them to exit codes.

Progress (one line per platform solved) goes to stderr; the summary table and ``--check``'s
verdicts go to stdout. ``--check`` exits 4 (``ExitCode.LOCK_STALE``) when a lockfile is missing
or stale, naming the platforms and the command that refreshes them.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import ChannelOption, PipIndexUrlOption, TorchFromOption
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.errors import ExitCode
from setup_tool.lock.channels import Channels, display
from setup_tool.lock.pip_indexes import PipIndexes
from setup_tool.lock.progress import LockProgress
from setup_tool.lock.results import CheckResult, LockResult, PlatformLock
from setup_tool.paths import shown_path
from setup_tool.variants import Variant


class LockVariant(str, Enum):
    """What ``--variant`` accepts for ``lock``: one variant, or all of them."""

    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"
    all = "all"


class Subdir(str, Enum):
    """What ``--platform`` accepts: ``setup_tool.variants.SUPPORTED_SUBDIRS``."""

    linux_64 = "linux-64"
    linux_aarch64 = "linux-aarch64"
    osx_arm64 = "osx-arm64"


@app.command()
def lock(
    variant: Annotated[
        LockVariant, typer.Option("--variant", help="The variant to lock, or all of them.")
    ] = LockVariant.all,
    platform: Annotated[
        list[Subdir] | None,
        typer.Option(
            "--platform",
            metavar=f"<{'|'.join(s.value for s in Subdir)}>",
            help="Only (re)lock this platform; repeatable. Other platforms keep their lock.",
        ),
    ] = None,
    channel: ChannelOption = None,
    pip_index_url: PipIndexUrlOption = None,
    torch_from: TorchFromOption = None,
    cuda: Annotated[
        str | None,
        typer.Option(
            "--cuda",
            metavar="X.Y",
            help="Driver CUDA version the cuda lock targets (replaces __cuda in envs/cuda.yml).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Solve nothing: exit 4 if a lockfile is missing or stale for its spec.",
        ),
    ] = False,
) -> None:
    """Lock envs/base.yml + envs/<variant>.yml into envs/locks/<variant>.conda-lock.yml.

    Each platform is solved with its own virtual packages (__cuda for cuda only), on any machine.
    """
    from setup_tool.paths import project_root

    terminal = Terminal()
    root = project_root()
    variants = list(Variant) if variant is LockVariant.all else [Variant(variant.value)]
    platforms = [p.value for p in platform] if platform else None
    options = {"platforms": platforms, "channels": channel, "cuda": cuda}
    options["pip_indexes"] = pip_index_url
    options["torch_from"] = torch_from.value if torch_from else None
    if check:
        _check(terminal, root, variants, options)
    else:
        _lock(terminal, root, variants, options)


class RichLockProgress(LockProgress):
    """``LockProgress`` as lines on stderr: one per variant started, one per platform solved."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def locking(self, variant: Variant, platforms: Sequence[str], channels: Channels) -> None:
        self.terminal.step(
            f"locking {variant.value} for {', '.join(platforms)} from {escape(channels.describe())}"
        )

    def solved(self, variant: Variant, lock: PlatformLock) -> None:
        self.terminal.info(
            f"    {variant.value} {lock.platform}: {lock.packages} packages, "
            f"pytorch {lock.pytorch or 'none'} ({lock.seconds:.2f} s)"
        )

    def locking_pip(self, variant: Variant, platforms: Sequence[str], indexes: PipIndexes) -> None:
        self.terminal.step(
            f"locking the pip section of {variant.value} for {', '.join(platforms)} "
            f"from {escape(indexes.describe())}"
        )

    def pip_locked(self, variant: Variant, platform: str, packages: int, seconds: float) -> None:
        self.terminal.info(f"    {variant.value} {platform}: {packages} wheels ({seconds:.2f} s)")


def _lock(terminal: Terminal, root: Path, variants: list[Variant], options: Any) -> None:
    from setup_tool.lock import lock_variants

    start = time.perf_counter()
    results = lock_variants(root, variants, progress=RichLockProgress(terminal), **options)
    elapsed = time.perf_counter() - start
    render_locks(terminal, root, results)
    solved = sum(entry.solved for locked in results for entry in locked.platforms)
    terminal.success(
        f"locked {len(results)} variant{'s' * (len(results) != 1)} "
        f"({solved} platform{'s' * (solved != 1)} solved) in {elapsed:.2f} s"
    )


def render_locks(terminal: Terminal, root: Path, results: Sequence[LockResult]) -> None:
    """The summary table on stdout: one row per variant and platform."""
    rows: list[tuple[str, ...]] = [
        ("variant", "platform", "packages", "pytorch", "cuda-version", "lockfile")
    ]
    for locked in results:
        state = "written" if locked.changed else "unchanged"
        for entry in locked.platforms:
            rows.append(
                (
                    locked.variant.value,
                    entry.platform,
                    f"{entry.packages} + {entry.pip_packages} pip"
                    if entry.pip_packages
                    else str(entry.packages),
                    entry.pytorch or "-",
                    entry.cuda_version or "-",
                    f"{shown_path(locked.path, root)} ({state})"
                    if entry.solved
                    else "(kept as it was locked)",
                )
            )
    # Plain aligned columns rather than a rich Table: nothing is cut when stdout is a pipe.
    for i, line in enumerate(_columns(rows)):
        terminal.show(f"[bold]{escape(line)}[/]" if i == 0 else escape(line))


def _check(terminal: Terminal, root: Path, variants: list[Variant], options: Any) -> None:
    from setup_tool.lock import check_locks

    checks = check_locks(root, variants, **options)
    for result in checks:
        render_check(terminal, root, result)
    stale = [r for r in checks if not r.up_to_date]
    if stale:
        needed = dict.fromkeys(r.channels.describe() for r in stale if r.channels)
        terminal.info(f"[dim]relocking needs {escape('; '.join(needed))}[/]")
        fail(ExitCode.LOCK_STALE)


def render_check(terminal: Terminal, root: Path, result: CheckResult) -> None:
    """One variant's verdict on stdout, and the command that refreshes it when not current."""
    shown = escape(shown_path(result.path, root))
    if result.up_to_date:
        names = ", ".join(p.platform for p in result.platforms)
        terminal.show(f"[green]✓[/] {result.variant.value}: {shown} is up to date ({names})")
        return
    if result.problem == "missing":
        why = "missing"
    elif result.problem:
        why = escape(result.problem)
    else:
        groups: dict[str, list[str]] = {}
        for status in result.platforms:
            if status.state != "current":
                groups.setdefault(status.state, []).append(status.platform)
        why = "; ".join(
            f"{escape(_state_text(state, result))}: {', '.join(names)}"
            for state, names in groups.items()
        )
    terminal.show(f"[red]✗[/] {result.variant.value}: {shown}: {why}")
    terminal.show(f"    refresh with: {escape(result.refresh)}")
    if any(p.state == "channels" for p in result.platforms):
        argv = ["setup-tool", "lock", "--variant", result.variant.value, "--check"]
        for url in result.locked_channels:
            argv += ["--channel", url]
        for url in result.locked_pip_indexes:
            argv += ["--pip-index-url", url]
        terminal.show(f"    or check against its own channels: {escape(shlex.join(argv))}")


def _state_text(state: str, result: CheckResult) -> str:
    if state == "torch":
        return (
            f"locked with PyTorch from {result.locked_torch_from}; checking for {result.torch_from}"
        )
    if state != "channels":
        return _STATE_TEXT[state]
    locked, against = [], []
    checked = result.channels.urls if result.channels else ()
    if result.locked_channels and result.locked_channels != checked:
        locked.append(", ".join(display(u, expand=False) for u in result.locked_channels))
        against.append(result.channels.describe() if result.channels else "other channels")
    indexes = result.pip_indexes
    if (
        indexes is not None
        and result.locked_pip_indexes
        and result.locked_pip_indexes != indexes.urls
    ):
        locked.append("pip " + ", ".join(display(u) for u in result.locked_pip_indexes))
        against.append(f"pip {indexes.describe()}")
    return f"locked from {'; '.join(locked)}; checking against {'; '.join(against)}"


_STATE_TEXT = {
    "stale": "stale (the spec changed since it was locked)",
    "missing": "not locked yet",
    "extra": "locked but no longer in the spec",
}


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
