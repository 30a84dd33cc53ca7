"""``setup-tool report``: benchmark results from any machines → a table and two PNG plots.

The reading, comparing and plotting live in ``setup_tool_bench.report`` (matplotlib, never
torch); this module renders the rows and maps problems to errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from setup_tool.cli.app import app
from setup_tool.cli.options import FlagsWithoutMetavar
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.errors import UsageError
from setup_tool.paths import RESULTS_DIR, project_root

if TYPE_CHECKING:
    from setup_tool_bench.report import Row, ScalingRow

COLUMNS = (
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
)
LEFT_ALIGNED = ("machine", "device", "loop")


@app.command(cls=FlagsWithoutMetavar)
def report(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Result files or directories (default: results/).", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the PNG plots (default: the first directory given).",
            show_default=False,
        ),
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
    from setup_tool_bench.report import comparison, scaling

    terminal = Terminal(quiet=json_output)
    sources = paths or [project_root() / RESULTS_DIR]
    results = _load(sources, terminal)
    rows, scaled = comparison(results), scaling(results)
    written = _write_plots(results, out or _default_out(sources)) if plots else []
    if json_output:
        terminal.json(
            {
                "runs": [row.to_json() for row in rows],
                "scaling": [row.to_json() for row in scaled],
                "plots": [str(p) for p in written],
            }
        )
        return
    terminal.show_wide(comparison_table(rows))
    if scaled:
        terminal.show_wide(scaling_table(scaled))
    if any(row.partial_epochs for row in rows):
        terminal.info("~ s/epoch of a partial run: a full epoch estimated from the steps it ran")
    for path in written:
        terminal.success(f"wrote {escape(str(path))}")


def _load(sources: list[Path], terminal: Terminal) -> list[dict[str, Any]]:
    from setup_tool_bench.report import ReportError, load_results

    try:
        results, skipped = load_results(sources)
    except ReportError as exc:
        raise UsageError(str(exc), "run `setup-tool bench` first, or name result files") from None
    for line in skipped:
        terminal.warn(escape(f"skipped {line}"))
    return results


def _default_out(sources: list[Path]) -> Path:
    return next((p for p in sources if p.is_dir()), sources[0].parent)


def _write_plots(results: list[dict[str, Any]], directory: Path) -> list[Path]:
    from setup_tool_bench.report import plot_epoch_times, plot_scaling, plot_seconds_per_epoch

    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = [
            plot_epoch_times(results, directory / "epoch_times.png").path,
            plot_seconds_per_epoch(results, directory / "seconds_per_epoch.png").path,
        ]
        scaled = plot_scaling(results, directory / "scaling.png")
        return [*written, scaled.path] if scaled else written
    except OSError as exc:
        raise UsageError(
            f"cannot write plots to {directory} ({exc.strerror or exc})",
            "pass --out with a writable directory",
        ) from None


def comparison_table(rows: list[Row]) -> Table:
    table = Table(title="setup-tool report", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in LEFT_ALIGNED else "right")
    for row in rows:
        notes = ("" if row.complete else " incomplete") + (" partial" if row.partial_epochs else "")
        table.add_row(
            escape(row.machine),
            escape(row.device),
            row.loop
            + (f" ×{row.processes}" if row.processes else "")
            + (f" [dim]({notes.strip()})[/]" if notes else ""),
            str(row.batch_size),
            str(row.epochs),
            ("~" if row.partial_epochs else "") + f"{row.seconds_per_epoch:.3f}",
            f"{row.samples_per_second:,.0f}",
            f"{row.speedup:.1f}×",
            "-" if row.train_accuracy is None else f"{row.train_accuracy:.4f}",
            "-" if row.test_accuracy is None else f"{row.test_accuracy:.4f}",
        )
    return table


SCALING_COLUMNS = (
    "run",
    "backend",
    "processes",
    "batch",
    "samples/s",
    "per process",
    "1 process",
    "ideal",
    "efficiency",
    "all-reduce wait",
)


def scaling_table(rows: list[ScalingRow]) -> Table:
    """Data-parallel runs: measured against processes x the 1-process run of the same launch."""
    table = Table(title="data-parallel scaling", title_justify="left")
    for column in SCALING_COLUMNS:
        table.add_column(column, justify="left" if column in ("run", "backend") else "right")

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    for row in rows:
        table.add_row(
            escape(row.label),
            row.backend,
            str(row.processes),
            str(row.global_batch_size),
            rate(row.samples_per_second),
            rate(row.samples_per_second_per_rank),
            rate(row.baseline_samples_per_second),
            rate(row.ideal_samples_per_second),
            "-" if row.efficiency is None else f"{row.efficiency:.0%}",
            "-" if row.allreduce_wait_fraction is None else f"{row.allreduce_wait_fraction:.0%}",
        )
    return table
