"""The CLI's one output object: diagnostics to stderr, results to stdout.

The core never prints: it returns results and reports progress as events (``install.progress``,
``lock.progress``, ``doctor.progress``), and the commands in ``setup_tool.cli`` render both
through a ``Terminal``. User-supplied text goes through ``escape`` so that a path like
``[cuda]`` is not taken for rich markup. When stderr is not a terminal (CI, pipes), progress is
plain lines rather than animated bars.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement

__all__ = ["Terminal", "escape"]


class Terminal:
    """Styled, quiet-able output. ``quiet`` silences info/step lines (used with ``--json``)."""

    # Set when a JSON document went to stdout in this command, so that the CLI's error
    # handling never adds a second one (``--json`` prints exactly one document).
    json_written = False

    def __init__(
        self,
        *,
        quiet: bool = False,
        stdout: Console | None = None,
        stderr: Console | None = None,
    ) -> None:
        self.quiet = quiet
        self.out = stdout or Console(highlight=False, soft_wrap=True)
        self.err = stderr or Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        """Whether progress may animate (stderr is a terminal)."""
        return self.err.is_terminal

    # Diagnostics (stderr).
    def step(self, message: str) -> None:
        """One line of progress for a multi-step command ("==> locking cpu ...")."""
        if not self.quiet:
            self.err.print(f"[bold blue]==>[/] {message}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def success(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[green]✓[/] {message}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}")

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]error:[/] {message}")
        if hint:
            self.err.print(f"[dim]hint:[/] {hint}")

    # Results (stdout).
    def show(self, renderable: RenderableType) -> None:
        self.out.print(renderable)

    def show_wide(self, renderable: RenderableType) -> None:
        """Print a table on stdout; outside a terminal (a pipe, a file) at its natural width,
        so that no value is cut to fit 80 columns: what is piped is meant to be read whole."""
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        options = self.out.options.update(width=100_000)
        natural = Measurement.get(self.out, options, renderable).maximum
        # Console.print caps a width at the console's own, so a wider console writes it.
        wide = Console(
            file=self.out.file,
            width=max(natural, self.out.width),
            highlight=False,
            soft_wrap=True,
            no_color=self.out.no_color,
            color_system=None,
        )
        wide.print(renderable)

    def json(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout, untouched by rich (no wrapping, no markup)."""
        self.out.file.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
        self.out.file.flush()
        Terminal.json_written = True

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something runs, or one plain line when not on a terminal."""
        if self.quiet:
            yield
        elif self.interactive:
            with self.err.status(message):
                yield
        else:
            self.err.print(message)
            yield
