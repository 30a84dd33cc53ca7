"""``setup-tool report``: benchmark results from any machines → a table and two PNG plots.

The reading, comparing and plotting live in ``bench.report`` (matplotlib, never torch); this
module renders the rows and maps problems to errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from setup_tool.cli.app import app
from setup_tool.errors import UsageError
from setup_tool.paths import RESULTS_DIR, project_root
from setup_tool.terminal import Terminal, escape


@app.command()
def report(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Result files or directories (default: results/).", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the PNG plots (default: the first directory given)."),
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the rows and plot paths as JSON.")
    ] = False,
) -> None:
    """Compare benchmark runs: s/epoch, samples/s, speed-up; plot per-epoch times.

    Writes epoch_times.png (per-epoch time by machine, device and loop) and
    seconds_per_epoch.png (bars; with the seed's published figures when a run has the seed's
    configuration).
    """
    from bench.report import (
        ReportError,
        comparison,
        load_results,
        plot_epoch_times,
        plot_seconds_per_epoch,
    )

    terminal = Terminal(quiet=json_output)
    sources = paths or [project_root() / RESULTS_DIR]
    try:
        results, skipped = load_results(sources)
    except ReportError as exc:
        raise UsageError(str(exc), "run `setup-tool bench` first, or name result files") from None
    for line in skipped:
        terminal.warn(escape(f"skipped {line}"))
    rows = comparison(results)
    written = []
    if plots:
        directory = out or next((p for p in sources if p.is_dir()), sources[0].parent)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            written = [
                plot_epoch_times(results, directory / "epoch_times.png").path,
                plot_seconds_per_epoch(results, directory / "seconds_per_epoch.png").path,
            ]
        except OSError as exc:
            raise UsageError(
                f"cannot write plots to {directory} ({exc.strerror or exc})",
                "pass --out with a writable directory",
            ) from None
    if json_output:
        terminal.json({"runs": [row.to_json() for row in rows], "plots": [str(p) for p in written]})
        return
    table = Table(title="setup-tool report", title_justify="left")
    for column in (
        "machine",
        "device",
        "loop",
        "batch",
        "epochs",
        "s/epoch",
        "samples/s",
        "speed-up",
        "train acc",
        "test acc",
    ):
        table.add_column(
            column, justify="left" if column in ("machine", "device", "loop") else "right"
        )
    for row in rows:
        notes = ("" if row.complete else " incomplete") + (" partial" if row.partial_epochs else "")
        table.add_row(
            escape(row.machine),
            escape(row.device),
            row.loop + (f" [dim]({notes.strip()})[/]" if notes else ""),
            str(row.batch_size),
            str(row.epochs),
            f"{row.seconds_per_epoch:.3f}",
            f"{row.samples_per_second:,.0f}",
            f"{row.speedup:.1f}×",
            "-" if row.train_accuracy is None else f"{row.train_accuracy:.4f}",
            "-" if row.test_accuracy is None else f"{row.test_accuracy:.4f}",
        )
    terminal.show(table)
    for path in written:
        terminal.success(f"wrote {escape(str(path))}")
