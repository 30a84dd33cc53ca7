"""Clocks that do not lie about asynchronous devices.

Epoch times are host-clock intervals read after ``synchronize``. Per-step times come from a
``StepClock``: on the CPU, and in loops that synchronise every step anyway (the faithful
loop's ``loss.item()``), the host clock after a sync; in the fast loops on a GPU, device events
recorded between steps and read once at the end of the epoch, so measuring adds no host sync.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from .devices import synchronize


def _event_class(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.cuda.Event
    if device.type == "mps":
        return getattr(getattr(torch.mps, "event", None), "Event", None)
    return None


class StepClock:
    """Marks step boundaries; ``durations()`` (after a sync) gives seconds per step."""

    def __init__(self, device: torch.device, capacity: int, *, sync_each_step: bool) -> None:
        self.device = device
        event = None if sync_each_step else _event_class(device)
        self.use_events = event is not None
        self.sync_each_step = sync_each_step
        self._events = [event(enable_timing=True) for _ in range(capacity + 1)] if event else []
        self._times: list[float] = []
        self._count = 0

    def start(self) -> None:
        self._count = 0
        self._times.clear()
        self.mark()

    def mark(self) -> None:
        if self.use_events:
            self._events[self._count].record()
        else:
            if self.sync_each_step:
                synchronize(self.device)
            self._times.append(time.perf_counter())
        self._count += 1

    def durations(self) -> list[float]:
        if self.use_events:
            marks = self._events[: self._count]
            return [a.elapsed_time(b) / 1000 for a, b in itertools.pairwise(marks)]
        return [b - a for a, b in itertools.pairwise(self._times)]


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float] | None:
    """p50/p90/p99/max/mean of step times, in milliseconds (nearest-rank percentiles)."""
    if not seconds:
        return None
    ordered = sorted(seconds)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / len(ordered) * 1000,
    }
