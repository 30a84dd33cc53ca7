"""``setup-tool doctor``: render the doctor's result and map it to the exit code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import JsonOption, PrefixOption, PythonOption
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.variants import VariantChoice

if TYPE_CHECKING:
    from rich.status import Status

    from setup_tool.doctor import DoctorProgress, DoctorResult

STATUS_MARKS = {
    "pass": "[green]✓[/]",
    "warn": "[yellow]![/]",
    "fail": "[bold red]✗[/]",
    "skip": "[dim]–[/]",
}


ExpectOption = Annotated[
    VariantChoice | None,
    typer.Option(
        "--expect",
        case_sensitive=False,
        help="The accelerator that must pass; auto: SETUP_TOOL_VARIANT, else detection.",
        show_default="auto",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=1.0,
        help="Seconds the probe may run before it is killed; the collective check's "
        "torchrun run gets as long again.",
    ),
]
DistributedOption = Annotated[
    bool | None,
    typer.Option(
        "--distributed/--no-distributed",
        help="Also check collectives through torch.distributed: NCCL with one process per "
        "GPU (cuda), gloo with 2 CPU processes (cpu, mps). Default: when torch sees 2 or "
        "more GPUs.",
        show_default="auto",
    ),
]
DistributedTimeoutOption = Annotated[
    float,
    typer.Option(
        "--distributed-timeout",
        min=1.0,
        help="Seconds a collective waits for a rank before that rank is reported as not answering.",
    ),
]


@app.command()
def doctor(
    python: PythonOption = None,
    prefix: PrefixOption = None,
    expect: ExpectOption = None,
    json_output: JsonOption = False,
    timeout: TimeoutOption = 120.0,
    distributed: DistributedOption = None,
    distributed_timeout: DistributedTimeoutOption = 30.0,
) -> None:
    """Check that torch really computes on the accelerator, and name the fix when it does not.

    With --distributed (or on a machine where torch sees 2+ GPUs) it also checks that the
    processes work together: all-reduce (checked exactly), broadcast, all-gather and the
    all-reduce bus bandwidth, with a hung or dead rank reported as such.

    Exit 0: the expected accelerator passed. 6: it failed. 8: it passed, another check failed.
    """
    from setup_tool.doctor import CollectiveOptions, run_doctor
    from setup_tool.paths import project_root

    terminal = Terminal(quiet=json_output)
    with doctor_progress(terminal) as progress:
        result = run_doctor(
            python=python,
            prefix=prefix,
            expect=expect,
            root=project_root(),
            environ=os.environ,
            timeout=timeout,
            progress=progress,
            collective=CollectiveOptions(distributed, distributed_timeout),
        )
    if json_output:
        terminal.json(result.to_json())
    else:
        render_doctor(result, terminal)
    if result.exit_code:
        fail(result.exit_code)


@contextmanager
def doctor_progress(terminal: Terminal) -> Iterator[DoctorProgress]:
    """The doctor's steps as one spinner line on a terminal, plain lines elsewhere."""
    from setup_tool.doctor import DoctorProgress

    class Shown(DoctorProgress):
        def __init__(self) -> None:
            self.spinner: Status | None = None

        def step(self, message: str) -> None:
            if terminal.quiet:
                return
            if not terminal.interactive:
                terminal.info(f"doctor: {escape(message)} ...")
            elif self.spinner is None:
                self.spinner = terminal.err.status(f"{escape(message)} ...")
                self.spinner.start()
            else:
                self.spinner.update(f"{escape(message)} ...")

        def done(self) -> None:
            if self.spinner is not None:
                self.spinner.stop()
                self.spinner = None

    shown = Shown()
    try:
        yield shown
    finally:
        shown.done()


def render_doctor(result: DoctorResult, terminal: Terminal) -> None:
    from rich.table import Table

    from setup_tool.doctor import Status

    interpreter = result.interpreter
    python = (
        f"{escape(str(interpreter.python))} (from {escape(interpreter.source)})"
        if interpreter
        else "none"
    )
    terminal.show(
        f"[bold]doctor[/] · python {python} · expecting [bold]{result.expect.value}[/] "
        f"({escape(result.expect_source)})"
    )
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for check in result.checks:
        table.add_row(STATUS_MARKS[check.status.value], escape(check.title), escape(check.detail))
        if check.fix and check.status in (Status.failed, Status.warned):
            table.add_row("", "", f"[cyan]fix:[/] {escape(check.fix)}")
    terminal.show(table)
    mark = STATUS_MARKS["pass" if result.exit_code == 0 else "fail"]
    terminal.show(f"{mark} {escape(result.summary)} (exit {int(result.exit_code)})")
