"""Progress on stderr: a rich bar with live samples/s and loss on a terminal, plain lines
otherwise (CI logs, pipes, ``setup-tool bench`` output captured to a file).

Updates are throttled by the host clock, so reporting costs a function call per step. The
samples/s shown live is the host's view and only a guide; the figures in the result come from
synchronised clocks (``bench.timing``). The fast loops have no per-step loss on the host (that
would be a sync), so their bar shows the loss at the end of each epoch only.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .loops import EpochStats

REFRESH_S = 0.1


class Reporter:
    """Progress of a run: the loops' ``Progress`` events plus one-line messages."""

    def __init__(self, epochs: int, stream: TextIO) -> None:
        self.epochs, self.stream = epochs, stream
        self.epoch = self.total = self.batch = 0
        self.started = self.last = 0.0

    def start_epoch(self, epoch: int, total_steps: int, batch_size: int) -> None:
        self.epoch, self.total, self.batch = epoch, total_steps, batch_size
        self.started = self.last = time.perf_counter()
        self._begin()

    def update(self, steps_done: int, loss: float | None = None) -> None:
        now = time.perf_counter()
        if now - self.last < REFRESH_S and steps_done != self.total:
            return
        self.last = now
        rate = steps_done * self.batch / max(now - self.started, 1e-9)
        self._show(steps_done, rate, loss)

    def _begin(self) -> None: ...
    def _show(self, steps_done: int, rate: float, loss: float | None) -> None: ...

    def end_epoch(self, stats: EpochStats) -> None:
        self._finish()
        self.info(
            f"  epoch {stats.epoch}/{self.epochs}: {stats.seconds:.2f} s, "
            f"{stats.samples / stats.seconds:,.0f} samples/s, loss {stats.loss:.4f}, "
            f"train accuracy {stats.accuracy:.4f}"
        )

    def _finish(self) -> None: ...

    def info(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        self._finish()


class SilentProgress(Reporter):
    """Reports nothing: for the ranks other than 0 of a data-parallel run, tuning scripts and
    tests."""

    def __init__(self, epochs: int = 1) -> None:
        super().__init__(epochs, sys.stderr)

    def update(self, steps_done: int, loss: float | None = None) -> None:
        pass

    def end_epoch(self, stats: EpochStats) -> None:
        pass

    def info(self, message: str) -> None:
        pass


class PlainProgress(Reporter):
    """A line at each quarter of an epoch."""

    def _begin(self) -> None:
        self.next_quarter = 1

    def _show(self, steps_done: int, rate: float, loss: float | None) -> None:
        if steps_done * 4 < self.next_quarter * self.total or steps_done == self.total:
            return
        while steps_done * 4 >= self.next_quarter * self.total:
            self.next_quarter += 1
        text = f"    step {steps_done}/{self.total}, {rate:,.0f} samples/s"
        if loss is not None:
            text += f", loss {loss:.4f}"
        self.info(text)


class RichProgress(Reporter):
    def __init__(self, epochs: int, stream: TextIO) -> None:
        super().__init__(epochs, stream)
        from rich.console import Console

        self.console = Console(file=stream)
        self.bar: Any = None

    def _begin(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("  epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(
            "train", total=self.total, epoch=f"{self.epoch}/{self.epochs}", rate="", loss=""
        )

    def _show(self, steps_done: int, rate: float, loss: float | None) -> None:
        fields = {"rate": f"{rate:,.0f} samples/s"}
        if loss is not None:
            fields["loss"] = f"loss {loss:.4f}"
        self.bar.update(self.task, completed=steps_done, **fields)

    def _finish(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)


def make_progress(epochs: int, stream: TextIO | None = None) -> Reporter:
    """Rich on a terminal when rich is installed in this environment, else plain lines."""
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            import rich  # noqa: F401
        except ImportError:
            pass
        else:
            return RichProgress(epochs, stream)
    return PlainProgress(epochs, stream)
