"""``setup-tool install``: the locked environment for this machine, and how to use it."""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgressBar

from setup_tool.cli.app import app
from setup_tool.cli.options import JsonOption, PrefixOption, VariantOption
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.install.progress import Progress
from setup_tool.install.request import install_request

__all__ = ["RichInstallProgress", "install", "render_install", "usage_hint"]

if TYPE_CHECKING:
    from setup_tool.install import InstallResult
    from setup_tool.install.download import Artifact
    from setup_tool.install.plan import Sizes, WheelPlan


LockfileOption = Annotated[
    Path | None,
    typer.Option(
        "--lockfile",
        help="Lockfile to install: a conda-lock file, or an explicit (@EXPLICIT) lockfile for "
        "this platform (default: envs/locks/<variant>.conda-lock.yml).",
        show_default=False,
    ),
]


VerifyCacheOption = Annotated[
    bool,
    typer.Option(
        "--verify-cache",
        help="Hash every cached archive and extracted file again, as if new. By default a file "
        "verified before is trusted while its size, inode and modification time are unchanged "
        "(docs/install.md, 'The package cache').",
    ),
]
AllowUnverifiedOption = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Install packages of an explicit lockfile that carry no hash (#<md5> or "
        "#sha256:<hex>), unchecked. Without it such a file is refused.",
    ),
]


@app.command()
def install(
    variant: VariantOption = None,
    lockfile: LockfileOption = None,
    prefix: PrefixOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan (add, remove, keep, download size).")
    ] = False,
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            metavar="NAME",
            help="Lock categories to install besides main, e.g. dev (repeatable); main is always "
            "installed, as conda-lock does.",
            show_default=False,
        ),
    ] = None,
    allow_unverified: AllowUnverifiedOption = False,
    verify_cache: VerifyCacheOption = False,
    json_output: JsonOption = False,
) -> None:
    """Install the locked environment for this machine: hash-verified, atomic, idempotent.

    The lock must contain this machine's platform and fit it before anything is downloaded:
    CUDA builds need an NVIDIA driver for their CUDA major (12.x: 525.60.13 or newer; 13.x:
    580 or newer; an older minor is a warning), and the glibc / macOS its packages ask for.
    Every package's hash (sha256; md5 where an explicit lockfile has only that) is checked
    before it is linked; the environment at the prefix changes in one atomic step, so an
    interrupted install leaves the previous one working. --dry-run never contacts the
    channel. Packages are cached in SETUP_TOOL_CACHE (default: the user cache directory).
    """
    from setup_tool.detect import detect, overrides_from
    from setup_tool.install import install as run_install

    terminal = Terminal(quiet=json_output)
    detection = detect(overrides_from(variant, os.environ), os.environ)
    request = install_request(
        detection,
        lockfile=lockfile,
        prefix=prefix,
        # conda-lock's own install always includes main (--dev and -e add to it); without it
        # an environment lacks what the extra categories' packages depend on.
        categories=tuple(sorted({"main", *(category or ())})),
        dry_run=dry_run,
        allow_unverified=allow_unverified,
        verify_cache=verify_cache,
    )
    # Detection's warnings about the CUDA build are left to the lock's own machine check,
    # which knows the build the lock really holds.
    target = detection.target
    for warning in (w for w in target.warnings if w not in target.cuda_warnings):
        terminal.warn(escape(warning))
    result = run_install(request, RichInstallProgress(terminal))
    if json_output:
        terminal.json(result.to_json())
        return
    render_install(terminal, result)


def render_install(terminal: Terminal, result: InstallResult) -> None:
    """The outcome in a few lines, then how to use the environment."""
    plan = result.plan
    where = escape(str(result.prefix))
    if result.status == "dry-run":
        terminal.show(
            f"[bold]Plan for {where}[/] ({escape(result.platform)}, dry run: nothing written)"
        )
        for package in plan.add:
            terminal.show(f"  [green]+ {escape(package.spec)}[/]")
        for change in plan.change:
            terminal.show(
                f"  [yellow]~ {escape(change.name)} {escape(change.old)} → {escape(change.new)}[/]"
            )
        for name in plan.remove:
            terminal.show(f"  [red]- {escape(name)}[/]")
        size = _download_size(len(plan.to_download), plan.sizes)
        terminal.show(
            f"  {len(plan.add)} to add, {len(plan.change)} to change, {len(plan.remove)} to "
            f"remove, {len(plan.keep)} unchanged; download {len(plan.to_download)} packages "
            f"({size})"
        )
        render_pip_plan(terminal, plan.pip)
        if note := plan.sizes.note or plan.pip.sizes.note:
            terminal.info(f"  [dim]sizes: {escape(note)}[/]")
        return
    if result.status == "up-to-date":
        terminal.success(
            f"{where} is up to date with {escape(result.lockfile.name)} ({result.seconds:.2f} s)"
        )
    else:
        pip = plan.pip
        wheels = len(pip.add) + len(pip.change) + len(pip.keep)
        pip_part = (
            f" and {wheels} pip packages ({len(pip.add)} added, {len(pip.change)} changed, "
            f"{len(pip.remove)} removed)"
            if wheels or pip.remove
            else ""
        )
        terminal.success(
            f"installed {len(plan.add) + len(plan.change) + len(plan.keep)} packages{pip_part} "
            f"into {where} ({len(plan.add)} added, {len(plan.change)} changed, "
            f"{len(plan.remove)} removed; {result.downloaded} downloaded, {result.reused} from "
            f"cache) in {result.seconds:.1f} s"
        )
    terminal.show(usage_hint(result))


def render_pip_plan(terminal: Terminal, pip: WheelPlan) -> None:
    """The pip part of a dry run, when the lock has one or the prefix has pip packages."""
    if not (pip.add or pip.change or pip.remove or pip.keep):
        return
    for wheel in pip.add:
        terminal.show(f"  [green]+ {escape(wheel.spec)} (pip)[/]")
    for change in pip.change:
        terminal.show(
            f"  [yellow]~ {escape(change.name)} {escape(change.old)} → {escape(change.new)} "
            f"(pip)[/]"
        )
    for name in pip.remove:
        terminal.show(f"  [red]- {escape(name)} (pip)[/]")
    size = _download_size(len(pip.to_download), pip.sizes)
    terminal.show(
        f"  pip: {len(pip.add)} to add, {len(pip.change)} to change, {len(pip.remove)} to "
        f"remove, {len(pip.keep)} unchanged; download {len(pip.to_download)} wheels ({size})"
    )


def usage_hint(result: InstallResult) -> str:
    """How to use the environment: activation, or its python by path. Quoted for the shell:
    the lines are meant to be copied, and a prefix may hold spaces."""
    return (
        f"Use it: [bold]conda activate {escape(shlex.quote(str(result.prefix)))}[/] (or "
        f"micromamba/mamba activate), or run its Python directly: "
        f"[bold]{escape(shlex.quote(str(result.python)))}[/]"
    )


def _download_size(count: int, sizes: Sizes) -> str:
    """ "nothing", "1.5 MiB", "1.5 MiB known, 3 of unknown size" or "size unknown"."""
    if not count:
        return "nothing"
    if not sizes.unknown:
        return _size(sizes.known)
    unknown = len(sizes.unknown)
    return (
        f"{_size(sizes.known)} known, {unknown} of unknown size" if sizes.known else "size unknown"
    )


def _size(nbytes: int) -> str:
    """1536 → "1.5 KiB"; bytes below 1 KiB as a whole number."""
    if nbytes < 1024:
        return f"{nbytes} B"
    size = float(nbytes)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


class RichInstallProgress(Progress):
    """Install progress: a download bar (bytes) and a link bar (packages); plain lines off a TTY."""

    def __init__(self, terminal: Terminal, *, said: Sequence[str] = ()) -> None:
        self.terminal = terminal
        self._bar: RichProgressBar | None = None
        self.said = tuple(said)  # warnings already shown (``env`` shows detect's first)

    def step(self, message: str) -> None:
        self.terminal.step(escape(message))

    def warning(self, message: str) -> None:
        # The lock's check words a detect warning as "<packages>: <detect's warning>".
        if not self.terminal.quiet and not any(message.endswith(w) for w in self.said):
            self.terminal.warn(escape(message))

    def downloads(self, count: int) -> _DownloadBar | None:
        if self.terminal.quiet or not self.terminal.interactive:
            return None
        self._bar = RichProgressBar(
            TextColumn("  download"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.terminal.err,
            transient=True,
        )
        self._bar.start()
        return _DownloadBar(self._bar)

    def linking(self, count: int) -> Callable[[], None] | None:
        return self._counter("link", count)

    def wheels(self, count: int) -> Callable[[], None] | None:
        return self._counter("pip", count)

    def _counter(self, label: str, count: int) -> Callable[[], None] | None:
        """A bar of ``count`` items; its advance may be called from worker threads (the pip
        phase installs wheels from several)."""
        if self.terminal.quiet or not self.terminal.interactive:
            return None
        self._bar = RichProgressBar(
            TextColumn(f"  {label}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=self.terminal.err,
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task(label, total=count)
        bar, lock = self._bar, threading.Lock()

        def advance() -> None:
            with lock:
                bar.advance(task)

        return advance

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _DownloadBar:
    """A thread-safe DownloadReporter over one rich task whose total grows as sizes are learnt."""

    def __init__(self, bar: RichProgressBar) -> None:
        self.bar = bar
        self.task = bar.add_task("download", total=0)
        self.lock = threading.Lock()
        self.total = 0

    def add_total(self, nbytes: int) -> None:
        with self.lock:
            self.total += nbytes
            self.bar.update(self.task, total=self.total)

    def advance(self, nbytes: int) -> None:
        self.bar.advance(self.task, nbytes)

    def package_done(self, package: Artifact, cached: bool) -> None:
        pass
