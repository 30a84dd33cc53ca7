"""Runs the benchmark: per device and loop, warm-up, timed epochs, evaluation, one result.

Ctrl-C stops the run in progress: the epochs it finished are written, marked incomplete
(``complete: false, interrupted: true``), no further run starts, and the exit code is 130.
An error inside torch during a run (a CUDA error, running out of memory) is saved the same way
(``complete: false`` and an ``error`` record with the phase, the step and the traceback), then
raised as one ``RunFailed`` line that names the loop, the device and the step.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .config import BenchConfig
from .devices import device_facts, peak_memory_bytes
from .errors import BenchError
from .loops import EpochStats, Trainer, WarmupStats, make_trainer
from .progress import Reporter
from .results import build_result, write_result


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    json_path: Path
    txt_path: Path

    @property
    def interrupted(self) -> bool:
        return bool(self.result["interrupted"])


@dataclass
class RunState:
    """What a run has done so far: saved as it is when the run stops early."""

    phase: str = "set-up"  # "set-up", "warm-up", "epoch N", "evaluation"
    step: int = 0  # the last step the loop reported in this phase
    details: dict[str, Any] = field(default_factory=dict)
    warmup: WarmupStats | None = None
    epochs: list[EpochStats] = field(default_factory=list)
    test: tuple[float, int] | None = None
    interrupted: bool = False
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the trainer's own result keys

    @property
    def where(self) -> str:
        return f"{self.phase}, step {self.step}" if self.step else self.phase


class _Tracking(Reporter):
    """Passes progress on and remembers the last step reported, for an error message."""

    def __init__(self, inner: Reporter, state: RunState) -> None:
        super().__init__(inner.epochs, inner.stream)
        self.inner, self.state = inner, state

    def start_epoch(self, epoch: int, total_steps: int, batch_size: int) -> None:
        self.state.phase, self.state.step = f"epoch {epoch}", 0
        self.inner.start_epoch(epoch, total_steps, batch_size)

    def update(self, steps_done: int, loss: float | None = None) -> None:
        self.state.step = steps_done
        self.inner.update(steps_done, loss)

    def end_epoch(self, stats: EpochStats) -> None:
        self.inner.end_epoch(stats)

    def info(self, message: str) -> None:
        self.inner.info(message)

    def close(self) -> None:
        self.inner.close()


TrainerFactory = Callable[[BenchConfig, torch.device, dict[str, Path]], Trainer]


def run_one(
    config: BenchConfig,
    files: dict[str, Path],
    progress: Reporter,
    *,
    requested_device: str,
    make: TrainerFactory = make_trainer,
    write: bool = True,
) -> Outcome | None:
    """One loop on one device. Ctrl-C and a failing step (a CUDA error, running out of
    memory) both save the epochs finished so far; a failure then raises ``RunFailed``.
    ``make`` builds the trainer (a data-parallel one in ``bench.ddp``); ``write=False``
    (ranks other than 0) measures without writing a result, and returns None."""
    device = torch.device(config.device)
    facts = device_facts(device)
    started = datetime.now(timezone.utc)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    progress.info(_start_line(config, facts))
    state = RunState()
    _train(config, device, files, make, _Tracking(progress, state), state)
    if not write:
        if state.error is not None:
            raise RunFailed(config, state)
        return None
    result = build_result(
        config=config,
        requested_device=requested_device,
        device=facts,
        details=state.details,
        warmup=state.warmup,
        epochs=state.epochs,
        test=state.test,
        started=started,
        interrupted=state.interrupted,
        peak_device_memory=_peak_memory(device),
        error=state.error,
        extra=state.extra,
    )
    json_path, txt_path = write_result(result, config.results_dir)
    if state.error is not None:
        progress.info(f"  saved {len(state.epochs)} finished epoch(s) in {json_path}")
        raise RunFailed(config, state)
    return Outcome(result, json_path, txt_path)


def _start_line(config: BenchConfig, facts: dict[str, Any]) -> str:
    batch = f"batch {config.batch_size}"
    if config.data_parallel:
        share = config.batch_size // config.world_size
        batch += f" ({share} on each of {config.world_size} processes)"
    return (
        f"==> {config.loop} loop on {config.device} ({facts['name']}), {batch}, "
        f"{config.epochs} epoch(s)"
        + (f" of at most {config.max_steps} steps" if config.max_steps else "")
    )


def _train(
    config: BenchConfig,
    device: torch.device,
    files: dict[str, Path],
    make: TrainerFactory,
    progress: _Tracking,
    state: RunState,
) -> None:
    """Warm-up, epochs, evaluation, recording into ``state`` as they finish."""
    trainer = None
    try:
        trainer = make(config, device, files)
        trainer.apply_global_settings()
        state.details = trainer.details
        state.phase = "warm-up"
        state.warmup = trainer.warm_up()
        progress.info(_warmup_line(state.warmup, state.details))
        for epoch in range(1, config.epochs + 1):
            state.epochs.append(trainer.train_epoch(epoch, progress))
        state.phase, state.step = "evaluation", 0
        state.test = trainer.evaluate(config.test_limit)
        progress.info(f"  test accuracy {state.test[0]:.4f} on {state.test[1]} images")
    except KeyboardInterrupt:
        state.interrupted = True
        progress.close()
        progress.info(
            f"  interrupted: saving {len(state.epochs)} finished epoch(s), marked incomplete"
        )
    except RuntimeError as exc:  # torch's errors: CUDA errors, out of memory, a failed kernel
        progress.close()
        state.error = {
            "phase": state.phase,
            "step": state.step or None,
            "type": type(exc).__name__,
            "message": str(exc).strip(),
            "traceback": traceback.format_exc(),
        }
    finally:
        if trainer is not None:
            state.extra = trainer.result_extras()
            trainer.close()


def _peak_memory(device: torch.device) -> int | None:
    try:
        return peak_memory_bytes(device)
    except RuntimeError:  # the device is unusable after a CUDA error
        return None


class RunFailed(BenchError):
    """A run stopped by an error inside torch; its finished epochs are saved."""

    def __init__(self, config: BenchConfig, state: RunState) -> None:
        error = state.error or {}
        first = (error.get("message") or "").splitlines()[:1]
        super().__init__(
            f"the {config.loop} loop failed on {config.device} in the {state.where}: "
            f"{error.get('type')}: {first[0] if first else ''}",
            _hint_for(config, error.get("message") or ""),
        )


def _hint_for(config: BenchConfig, message: str) -> str:
    if "out of memory" in message.lower():
        return f"try a smaller --batch-size than {config.batch_size}"
    if "CUDA" in message:
        return (
            "CUDA reports errors late: rerun with CUDA_LAUNCH_BLOCKING=1 to see the failing "
            "step; the traceback is in the result's error field"
        )
    return "the traceback is in the result file's error field"


def _warmup_line(warmup: WarmupStats, details: dict[str, Any]) -> str:
    text = f"  warm-up: {warmup.steps} step(s), {warmup.seconds:.2f} s (not in the figures)"
    if warmup.first_step_seconds is not None:
        text += f"; first step {warmup.first_step_seconds:.2f} s"
    if warmup.capture_seconds is not None:
        text += f"; capture {warmup.capture_seconds:.2f} s"
    if details.get("capture"):
        text += f"; capture mode {details['capture']}"
    if details.get("capture_note"):
        text += f" ({details['capture_note']})"
    return text


def run_all(
    configs: list[BenchConfig],
    files: dict[str, Path],
    progress: Reporter,
    *,
    requested_device: str,
) -> list[Outcome]:
    outcomes = []
    for config in configs:
        outcome = run_one(config, files, progress, requested_device=requested_device)
        assert outcome is not None  # written: run_one returns None only with write=False
        outcomes.append(outcome)
        progress.info(f"  saved {outcome.json_path} and {outcome.txt_path.name}")
        if outcome.interrupted:
            break
    return outcomes
