"""``setup-tool doctor``: render the doctor's result and map it to the exit code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from setup_tool.cli.app import app, fail
from setup_tool.terminal import Terminal, escape
from setup_tool.variants import VariantChoice

if TYPE_CHECKING:
    from setup_tool.doctor import DoctorResult

STATUS_MARKS = {
    "pass": "[green]✓[/]",
    "warn": "[yellow]![/]",
    "fail": "[bold red]✗[/]",
    "skip": "[dim]–[/]",
}


@app.command()
def doctor(
    python: Annotated[
        Path | None,
        typer.Option(
            "--python",
            help="The Python to check (a path, or a command on PATH such as python3).",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        Path | None,
        typer.Option(
            "--prefix", help="The conda environment to check (its bin/python).", show_default=False
        ),
    ] = None,
    expect: Annotated[
        VariantChoice | None,
        typer.Option(
            "--expect",
            help="The accelerator that must pass; auto: SETUP_TOOL_VARIANT, else detection.",
            show_default="auto",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (stable schema).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1.0, help="Seconds the probe may run before it is killed."),
    ] = 120.0,
) -> None:
    """Check that torch really computes on the accelerator, and name the fix when it does not.

    Exit 0 when the expected accelerator passes; 6 when it fails; 8 when it passes but another
    check (torchvision, the lock) fails.
    """
    from setup_tool.doctor import run_doctor
    from setup_tool.paths import project_root

    terminal = Terminal(quiet=json_output)
    with terminal.status("running the doctor's probe (imports torch) ..."):
        result = run_doctor(
            python=python,
            prefix=prefix,
            expect=expect,
            root=project_root(),
            environ=os.environ,
            timeout=timeout,
        )
    if json_output:
        terminal.json(result.to_json())
    else:
        _render(result, terminal)
    if result.exit_code:
        fail(result.exit_code)


def _render(result: DoctorResult, terminal: Terminal) -> None:
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
