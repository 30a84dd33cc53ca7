"""``--loop seed``: the 2022 experiment's training loop, faithfully.

Kept as the seed wrote it, quirks included, so its figures compare: torchvision's MNIST with
``ToTensor`` only, a ``DataLoader`` without shuffling (default workers), batch 16, Adam at
1e-4, the model's softmax output fed to ``CrossEntropyLoss`` (the double softmax, see
``bench.model``), batches moved to the device each step, and per step a ``.cpu()`` of the
output for accuracy and a ``loss.item()``, each a host synchronisation. Only the timing is
added: a sync before each clock read, and warm-up steps excluded from the figures.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..config import BenchConfig
from ..data import faithful_datasets
from ..devices import synchronize
from ..model import SeedNet
from ..timing import StepClock
from . import EpochStats, Progress, WarmupStats

FIRST_LOSSES = 10
EVAL_BATCH = 1000


class SeedTrainer:
    def __init__(self, config: BenchConfig, device: torch.device, files: dict[str, Path]) -> None:
        self.config, self.device = config, device
        data = faithful_datasets(files)
        self.test_set = data.test
        torch.manual_seed(config.seed)
        self.model = SeedNet(softmax_output=config.loss == "seed").to(device)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = self._new_optimizer()
        self.loader = DataLoader(data.train, batch_size=config.batch_size, shuffle=False)
        self.steps_per_epoch = min(len(self.loader), config.max_steps or len(self.loader))
        self.details: dict[str, Any] = {
            "dataset": data.source,
            "dataset_note": data.note,
            "data_placement": "DataLoader on the host, batches copied each step",
            "optimizer": "Adam (torch default implementation)",
            "capture": None,
            "precision": "fp32",
            "channels_last": False,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "host_syncs_per_step": 2,
        }

    def apply_global_settings(self) -> None:
        """Nothing: the seed ran with torch's defaults."""

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """One step as the seed did it; returns (loss, correct predictions)."""
        inputs, targets = images.to(self.device), labels.to(self.device)
        self.optimizer.zero_grad()
        output = self.model(inputs)
        loss = self.criterion(output, targets)
        loss.backward()
        self.optimizer.step()
        predicted = output.detach().cpu().argmax(dim=1)
        return loss.item(), int((predicted == labels).sum())

    def warm_up(self) -> WarmupStats:
        steps = min(self.config.warmup_steps, self.steps_per_epoch)
        if steps == 0:
            return WarmupStats(0, 0.0)
        saved = copy.deepcopy(self.model.state_dict())
        first = None
        synchronize(self.device)
        start = time.perf_counter()
        for index, (images, labels) in enumerate(self.loader):
            if index == steps:
                break
            self.step(images, labels)
            if index == 0:
                synchronize(self.device)
                first = time.perf_counter() - start
        synchronize(self.device)
        seconds = time.perf_counter() - start
        self.model.load_state_dict(saved)
        self.optimizer = self._new_optimizer()
        torch.manual_seed(self.config.seed)
        return WarmupStats(steps, seconds, first)

    def train_epoch(self, epoch: int, progress: Progress) -> EpochStats:
        steps, batch = self.steps_per_epoch, self.config.batch_size
        clock = StepClock(self.device, steps, sync_each_step=True)
        self.model.train()
        total_loss, correct, samples, done = 0.0, 0, 0, 0
        first_losses: list[float] = []
        progress.start_epoch(epoch, steps, batch)
        synchronize(self.device)
        start = time.perf_counter()
        clock.start()
        for index, (images, labels) in enumerate(self.loader):
            if index == steps:
                break
            loss, hits = self.step(images, labels)
            clock.mark()
            total_loss += loss
            correct += hits
            samples += len(labels)
            done += 1
            if len(first_losses) < FIRST_LOSSES:
                first_losses.append(loss)
            progress.update(done, loss)
        synchronize(self.device)
        seconds = time.perf_counter() - start
        stats = EpochStats(
            epoch=epoch,
            seconds=seconds,
            steps=done,
            samples=samples,
            loss=total_loss / max(done, 1),
            accuracy=correct / max(samples, 1),
            step_seconds=clock.durations(),
            first_losses=first_losses,
        )
        progress.end_epoch(stats)
        return stats

    def evaluate(self, limit: int | None) -> tuple[float, int]:
        test_set = self.test_set
        if limit is not None and limit < len(test_set):  # type: ignore[arg-type]
            test_set = Subset(test_set, range(limit))
        loader = DataLoader(test_set, batch_size=EVAL_BATCH, shuffle=False)
        self.model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in loader:
                predicted = self.model(images.to(self.device)).argmax(dim=1).cpu()
                correct += int((predicted == labels).sum())
                total += len(labels)
        self.model.train()
        return correct / max(total, 1), total

    def result_extras(self) -> dict[str, Any]:
        return {"distributed": None}  # one process

    def close(self) -> None:
        pass
