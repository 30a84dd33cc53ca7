"""``setup-tool env`` (``make env``): render ``setup_tool.pipeline``'s steps, pick the exit code.

The pipeline (detect → lock if missing or stale → install → doctor) lives in the core; this
module prints one line per step and, when the doctor finds a problem, its full report.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import (
    ChannelOption,
    PipIndexUrlOption,
    PrefixOption,
    TorchFromOption,
    VariantOption,
)
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.install.progress import Progress
from setup_tool.paths import shown_path
from setup_tool.pipeline import DetectStep, EnvRequest, LockStep, PipelineEvents

if TYPE_CHECKING:
    from pathlib import Path

    from setup_tool.doctor import DoctorResult
    from setup_tool.install import InstallResult
    from setup_tool.lock import CheckResult
    from setup_tool.lock.progress import LockProgress


@app.command()
def env(
    variant: VariantOption = None,
    channel: ChannelOption = None,
    pip_index_url: PipIndexUrlOption = None,
    torch_from: TorchFromOption = None,
    prefix: PrefixOption = None,
    doctor: Annotated[
        bool, typer.Option("--doctor/--no-doctor", help="Run the doctor's check at the end.")
    ] = True,
) -> None:
    """Make this machine's PyTorch environment: detect, lock if needed, install, check.

    Locking needs the channel (conda-forge, or --channel); installing needs the lock's
    package URLs. With the lock up to date and the environment installed, a rerun changes
    nothing.
    """
    from setup_tool.cli.doctor import render_doctor
    from setup_tool.cli.install import usage_hint
    from setup_tool.paths import project_root
    from setup_tool.pipeline import run_env

    terminal = Terminal()
    request = EnvRequest(
        root=project_root(),
        variant=variant,
        channels=tuple(channel) if channel else None,
        pip_indexes=tuple(pip_index_url) if pip_index_url else None,
        torch_from=torch_from.value if torch_from else None,
        prefix=prefix,
        doctor=doctor,
        environ=os.environ,
    )
    with ExitStack() as spinner:
        result = run_env(request, EnvEvents(terminal, request.root, spinner))
    if result.doctor is not None and result.exit_code:
        render_doctor(result.doctor, terminal)
        fail(result.exit_code)
    terminal.show(usage_hint(result.install))


class EnvEvents(PipelineEvents):
    """One ``==>`` line per step on stderr; the doctor runs under a spinner."""

    def __init__(self, terminal: Terminal, root: Path, spinner: ExitStack) -> None:
        self.terminal = terminal
        self.root = root
        self.spinner = spinner
        self.said: tuple[str, ...] = ()  # detect's warnings, not repeated by install's

    def detected(self, step: DetectStep) -> None:
        target = step.detection.target
        self.terminal.step(
            f"detect: [bold]{step.variant.value}[/] (from {escape(target.variant_source)}): "
            f"{escape(target.reason)}"
        )
        for warning in target.warnings:
            self.terminal.warn(escape(warning))
        self.said = tuple(target.warnings)

    def locking(self, check: CheckResult) -> None:
        why = check.problem or f"stale for {', '.join(check.stale_platforms)}"
        self.terminal.step(
            f"lock: {escape(shown_path(check.path, self.root))} is {escape(why)}; "
            "locking (this needs the channel) ..."
        )

    def locked(self, step: LockStep) -> None:
        built_for = f" (PyTorch for CUDA {escape(step.cuda)})" if step.cuda else ""
        if not step.relocked:
            self.terminal.step(
                f"lock: {escape(shown_path(step.lockfile, self.root))} is up to date{built_for}"
            )
        elif built_for:
            self.terminal.step(f"lock: {escape(shown_path(step.lockfile, self.root))}{built_for}")

    def lock_progress(self) -> LockProgress:
        from setup_tool.cli.lock import RichLockProgress

        return RichLockProgress(self.terminal)

    def install_progress(self) -> Progress:
        from setup_tool.cli.install import RichInstallProgress

        return RichInstallProgress(self.terminal, said=self.said)

    def installed(self, result: InstallResult) -> None:
        state = "is up to date" if result.status == "up-to-date" else "installed"
        self.terminal.step(
            f"install: {escape(shown_path(result.prefix, self.root))} {state} "
            f"({result.seconds:.1f} s)"
        )

    def doctor_started(self) -> None:
        self.spinner.enter_context(
            self.terminal.status("doctor: checking the accelerator (imports torch) ...")
        )

    def doctor_finished(self, result: DoctorResult) -> None:
        self.spinner.close()
        if not result.exit_code:
            self.terminal.step(f"doctor: {escape(result.summary)}")
