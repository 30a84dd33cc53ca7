"""The training loops. Each is a trainer with the same four methods, built by ``make_trainer``:

    apply_global_settings()  the process-wide ``torch.backends`` flags the loop wants (an
                         explicit step: building a trainer changes no global state)
    warm_up()            a few steps (and any compile / capture), then the initial weights,
                         optimizer state and RNG are restored, so timed epochs start from the
                         same state as an unwarmed run
    train_epoch(n, p)    one timed epoch, reporting to progress ``p``
    evaluate(limit)      test-set accuracy (untimed)
    result_extras()      keys the loop adds to the result (``distributed``: None unless
                         data-parallel)
    close()              put back the flags apply_global_settings() changed

``seed`` is the 2022 experiment's loop kept as it was (``bench.loops.seed``); ``fast`` and
``throughput`` share one device-resident implementation with different presets
(``bench.loops.resident``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from ..config import BenchConfig


@dataclass
class EpochStats:
    epoch: int
    seconds: float
    steps: int
    samples: int
    loss: float
    accuracy: float
    step_seconds: list[float] = field(default_factory=list)
    first_losses: list[float] | None = None  # the first step losses (seed loop only)


@dataclass
class WarmupStats:
    steps: int
    seconds: float
    first_step_seconds: float | None = None  # the first step: kernel loading, compilation
    capture_seconds: float | None = None  # CUDA graph capture, when the loop captures


class Progress(Protocol):
    def start_epoch(self, epoch: int, total_steps: int, batch_size: int) -> None: ...
    def update(self, steps_done: int, loss: float | None = None) -> None: ...
    def end_epoch(self, stats: EpochStats) -> None: ...


class Trainer(Protocol):
    steps_per_epoch: int
    details: dict[str, Any]

    def apply_global_settings(self) -> None: ...
    def warm_up(self) -> WarmupStats: ...
    def train_epoch(self, epoch: int, progress: Progress) -> EpochStats: ...
    def evaluate(self, limit: int | None) -> tuple[float, int]: ...
    def result_extras(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


def make_trainer(config: BenchConfig, device: torch.device, files: dict[str, Path]) -> Trainer:
    if config.loop == "seed":
        from .seed import SeedTrainer

        return SeedTrainer(config, device, files)
    from .resident import ResidentTrainer

    return ResidentTrainer(config, device, files)
