"""Runs the benchmark: per device and loop, warm-up, timed epochs, evaluation, one result.

Ctrl-C stops the run in progress: the epochs it finished are written, marked incomplete
(``complete: false, interrupted: true``), no further run starts, and the exit code is 130.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .config import BenchConfig
from .devices import device_facts, peak_memory_bytes
from .loops import EpochStats, WarmupStats, make_trainer
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


def run_one(
    config: BenchConfig,
    files: dict[str, Path],
    progress: Reporter,
    *,
    requested_device: str,
) -> Outcome:
    device = torch.device(config.device)
    facts = device_facts(device)
    started = datetime.now(timezone.utc)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    epochs: list[EpochStats] = []
    warmup: WarmupStats | None = None
    test: tuple[float, int] | None = None
    interrupted = False
    details: dict[str, Any] = {}
    progress.info(
        f"==> {config.loop} loop on {config.device} ({facts['name']}), batch {config.batch_size}, "
        f"{config.epochs} epoch(s)"
        + (f" of at most {config.max_steps} steps" if config.max_steps else "")
    )
    trainer = None
    try:
        trainer = make_trainer(config, device, files)
        trainer.apply_global_settings()
        details = trainer.details
        warmup = trainer.warm_up()
        progress.info(_warmup_line(warmup, details))
        for epoch in range(1, config.epochs + 1):
            epochs.append(trainer.train_epoch(epoch, progress))
        test = trainer.evaluate(config.test_limit)
        progress.info(f"  test accuracy {test[0]:.4f} on {test[1]} images")
    except KeyboardInterrupt:
        interrupted = True
        progress.close()
        progress.info(f"  interrupted: saving {len(epochs)} finished epoch(s), marked incomplete")
    finally:
        if trainer is not None:
            trainer.close()
    result = build_result(
        config=config,
        requested_device=requested_device,
        device=facts,
        details=details,
        warmup=warmup,
        epochs=epochs,
        test=test,
        started=started,
        interrupted=interrupted,
        peak_device_memory=peak_memory_bytes(device),
    )
    json_path, txt_path = write_result(result, config.results_dir)
    return Outcome(result, json_path, txt_path)


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
        outcomes.append(outcome)
        progress.info(f"  saved {outcome.json_path} and {outcome.txt_path.name}")
        if outcome.interrupted:
            break
    return outcomes
