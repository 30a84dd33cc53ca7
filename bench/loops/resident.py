"""``--loop fast`` and ``--loop throughput``: the seed's training with the overhead taken out.

Same model, Adam, learning rate and data order as the faithful loop; what changes is where the
time went at batch 16 (docs/PERFORMANCE.md measures it):

* the training set lives on the device as uint8 (47 MB) and each step gathers its batch there
  and scales it by 1/255 (what ``ToTensor`` did per sample on the host);
* no host synchronisation inside an epoch: loss and correct predictions accumulate in device
  tensors read once per epoch, and step times come from device events;
* the logits go into ``CrossEntropyLoss`` (``--loss seed`` puts the double softmax back, to
  check that only the loss changed);
* cuDNN autotuning on CUDA; channels-last tensors where they measured faster (CPU,
  throughput on CUDA); fused Adam, or on CUDA with compile-graph a torch.compile'd foreach
  Adam (its kernels cover the whole model; the fused kernel leaves most of the GPU idle);
* the whole step (batch fetch, forward, backward, Adam, metrics) is captured as one CUDA graph
  and replayed, or compiled, per ``--capture``:

      none             eager kernels, launched one by one (CPU, MPS, or as a reference)
      compile          torch.compile'd fetch+forward+loss (inductor kernels), no graph
      graph            one CUDA graph of the whole step over eager kernels, capturable Adam
      compile-graph    one CUDA graph of the whole step over inductor kernels (auto on CUDA)
      reduce-overhead  torch.compile(mode="reduce-overhead") (its own CUDA graphs)

  A graph needs a CUDA device: elsewhere ``graph`` falls back to ``none`` and the compiled
  modes to ``compile``; a capture or compile that fails at run time falls back to ``none``.
  The result records the mode asked for, the mode used and why they differ.

Each epoch runs ``len(train) // batch`` steps: the last partial batch is dropped (none at
batch 16; 2,656 samples at 4096), since a captured step has one shape.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import BenchConfig
from ..data import MnistArrays, load_arrays
from ..devices import synchronize
from ..model import SeedNet
from ..timing import StepClock
from . import EpochStats, Progress, WarmupStats

# What --capture auto means on a CUDA device, per loop: the fastest mode measured on an H200
# (docs/PERFORMANCE.md, "Choosing the capture mode").
AUTO_CAPTURE = {"fast": "compile-graph", "throughput": "compile-graph"}
# Channels-last per (loop, device type) when not given. On the H200 at batch 16 the eager
# channels-last max-pool kernels cost more than the layout saves; CPU convolutions (oneDNN)
# gain from it; MPS has had channels-last gaps, so it keeps NCHW.
CHANNELS_LAST = {("fast", "cuda"): False, ("throughput", "cuda"): True, ("fast", "cpu"): True}
GRAPH_MODES = ("graph", "compile-graph")
COMPILED_MODES = ("compile", "compile-graph", "reduce-overhead")
CAPTURE_WARMUP_STEPS = 3  # eager steps before a capture (PyTorch's CUDA graph guidance)
EVAL_BATCH = 1000


def resolve_capture(requested: str, loop: str, device: torch.device) -> tuple[str, str | None]:
    """The capture mode to use on ``device`` and, when it differs from the request, why."""
    if requested == "auto":
        return (AUTO_CAPTURE[loop], None) if device.type == "cuda" else ("none", None)
    if device.type != "cuda" and requested in (*GRAPH_MODES, "reduce-overhead"):
        fallback = "none" if requested == "graph" else "compile"
        return fallback, f"{requested} needs CUDA graphs, which {device.type} lacks"
    return requested, None


# Why a data-parallel step is not one CUDA graph, as the result's capture_note says it.
DATA_PARALLEL_NO_GRAPH = (
    "data-parallel steps are not captured in a CUDA graph: the time split runs the "
    "step with and without the all-reduce (no_sync) one by one, and the hook that counts the "
    "all-reduced buckets runs on the host, which a graph replay skips"
)
# What --capture auto means for a data-parallel step on CUDA, per loop. Measured on an H200
# with one NCCL process (docs/evidence/h200/2026-12-02/bench-ddp/): the fast loop's batch-16
# step is launch-bound, and compiled it was no faster than eager (18.2 against 15.9-17.2
# s/epoch over two eager runs) after a 21.6 s warm-up against 2.6-4.8 s; the throughput
# loop's large batches gain from the fused kernels (batch 4096 compiled: 98% of the
# single-process CUDA graph's samples/s).
DATA_PARALLEL_AUTO_CAPTURE = {"fast": "none", "throughput": "compile"}


def capture_for(config: BenchConfig, device: torch.device) -> tuple[str, str | None]:
    """The capture mode of this run. A data-parallel step is eager or compiled on CUDA (auto:
    ``DATA_PARALLEL_AUTO_CAPTURE``) but never captured in a CUDA graph (``bench.config``
    refuses graph modes for it); the note says why."""
    if not config.data_parallel:
        return resolve_capture(config.capture, config.loop, device)
    if config.capture == "auto":
        if device.type != "cuda":
            return "none", None
        return DATA_PARALLEL_AUTO_CAPTURE.get(config.loop, "none"), DATA_PARALLEL_NO_GRAPH
    return config.capture, None


def resolve_precision(requested: str, loop: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if loop == "throughput" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def make_adam(params: Any, lr: float, *, capturable: bool) -> tuple[torch.optim.Adam, str]:
    """Fused Adam (one multi-tensor kernel) where this torch has it for the device."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, capturable=capturable), "Adam(fused)"
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True, capturable=capturable), "Adam(foreach)"


@dataclass(frozen=True)
class BackendSettings:
    """The process-wide ``torch.backends`` flags a loop runs with."""

    cudnn_benchmark: bool  # cuDNN autotuning: tries algorithms on the first step of each shape
    matmul_tf32: bool  # TF32 for matmuls (cuDNN convolutions use TF32 by default anyway)

    @classmethod
    def current(cls) -> BackendSettings:
        return cls(torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)

    def apply(self) -> BackendSettings:
        """Set these flags for the whole process; return the ones they replace."""
        previous = BackendSettings.current()
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        return previous


@dataclass(frozen=True)
class Shard:
    """This process's part of a data-parallel run: rank ``rank`` of ``world_size``."""

    rank: int
    world_size: int


class ResidentTrainer:
    """The fast and throughput loops. Building one changes no global state: the
    ``torch.backends`` flags it wants are applied by ``apply_global_settings()`` and put back
    by ``close()``.

    In a data-parallel run (``bench.ddp``) each process builds one with its ``shard``: it
    keeps only its slice of every global batch (rank r of W takes samples r*B/W to
    (r+1)*B/W of each step's batch of B, so together the ranks see the same data in the same
    order as one process), and ``wrap`` puts the model inside DistributedDataParallel.
    """

    def __init__(
        self,
        config: BenchConfig,
        device: torch.device,
        files: dict[str, Path],
        *,
        shard: Shard | None = None,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> None:
        self.config, self.device = config, device
        self.shard = shard or Shard(0, 1)
        self.batch = config.batch_size // self.shard.world_size  # this process's part
        arrays = load_arrays(files)
        self._make_resident(arrays)
        self.test_images, self.test_labels = arrays.test_images, arrays.test_labels
        self.capture, capture_note = capture_for(config, device)
        self.precision = resolve_precision(config.precision, config.loop, device)
        self.channels_last = (
            config.channels_last
            if config.channels_last is not None
            else CHANNELS_LAST.get((config.loop, device.type), device.type == "cpu")
        )
        self.backend = BackendSettings(
            cudnn_benchmark=config.cudnn_benchmark
            if config.cudnn_benchmark is not None
            else device.type == "cuda",
            matmul_tf32=self.precision == "tf32" or BackendSettings.current().matmul_tf32,
        )
        self._saved_backend: BackendSettings | None = None
        self._build_model()
        self.network = wrap(self.model) if wrap is not None else self.model  # what trains
        optimizer_name = self._build_optimizer()
        self._compile()
        self.counter = torch.zeros((), dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.clock = StepClock(device, self.steps_per_epoch, sync_each_step=False)
        self.details = self._describe(optimizer_name, capture_note, len(arrays.train_labels))

    def _make_resident(self, arrays: MnistArrays) -> None:
        """The training set on the device, one row per step (uint8 steps x B x 1 x 28 x 28):
        a step's batch is one row, fetched by a device-side step counter, so a captured graph
        reads the next batch on each replay."""
        batch = self.config.batch_size  # the global batch: every rank's parts together
        self.full_steps = len(arrays.train_labels) // batch
        self.steps_per_epoch = min(self.full_steps, self.config.max_steps or self.full_steps)
        used = self.full_steps * batch
        part = slice(self.shard.rank * self.batch, (self.shard.rank + 1) * self.batch)
        images = arrays.train_images[:used].reshape(self.full_steps, batch, 1, 28, 28)
        self.images = images[:, part].contiguous().to(self.device)
        labels = arrays.train_labels[:used].reshape(self.full_steps, batch)
        self.labels = labels[:, part].contiguous().to(self.device)

    def _build_model(self) -> None:
        torch.manual_seed(self.config.seed)
        self.model = SeedNet(softmax_output=self.config.loss == "seed").to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = nn.CrossEntropyLoss()

    def _build_optimizer(self) -> str:
        """Adam as the capture mode wants it; returns its description for the result."""
        capturable = self.capture in GRAPH_MODES
        wanted = self.config.compile_optimizer
        self.compile_optimizer = (
            wanted if wanted is not None else self.capture == "compile-graph"
        ) and self.capture in COMPILED_MODES
        if not self.compile_optimizer:
            self.optimizer, name = make_adam(
                self.model.parameters(), self.config.lr, capturable=capturable
            )
            return name
        # Inductor fuses foreach Adam into a few kernels sized to the whole model; the fused
        # CUDA kernel runs one block per 64K elements, 54 blocks for 3.5M parameters, which
        # leaves most of an H200's 132 multiprocessors idle.
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.config.lr, foreach=True, capturable=capturable
        )
        return "Adam(foreach, torch.compile)"

    def _compile(self) -> None:
        self._forward_loss_fn: Any = self._forward_loss
        self._optimizer_step: Any = self.optimizer.step
        if self.capture not in COMPILED_MODES:
            return
        mode = "reduce-overhead" if self.capture == "reduce-overhead" else None
        # The batch fetch and scaling compile with the model, so they fuse into its kernels.
        self._forward_loss_fn = torch.compile(self._forward_loss, mode=mode, dynamic=False)
        if self.compile_optimizer:
            self._optimizer_step = torch.compile(self.optimizer.step)

    def _describe(self, optimizer: str, capture_note: str | None, samples: int) -> dict[str, Any]:
        return {
            "dataset": "bench.data (IDX → device-resident uint8)",
            "data_placement": f"whole training set on {self.device.type}, batches gathered there",
            "optimizer": optimizer,
            "capture_requested": self.config.capture,
            "capture": self.capture,
            "capture_note": capture_note,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "cudnn_benchmark": self.backend.cudnn_benchmark,
            "compiled_optimizer": self.compile_optimizer,
            "host_syncs_per_step": 0,
            "dropped_samples_per_epoch": samples - self.full_steps * self.config.batch_size,
        }

    def apply_global_settings(self) -> None:
        """Set the ``torch.backends`` flags this loop runs with (process-wide; ``close``
        restores what was there)."""
        previous = self.backend.apply()
        if self._saved_backend is None:
            self._saved_backend = previous

    # The step. ------------------------------------------------------------------------------
    def batch_for(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``index``'s inputs as the model sees them (floats in [0, 1]), and labels.

        The index wraps around the epoch's batches: a warm-up longer than an epoch, and the
        replays after a graph capture, carry the step counter past the last batch (at batch
        16384, 60,000 images make 3 batches; 3 eager warm-up steps and 2 replays read row 4,
        a device-side out-of-range gather). Within a timed epoch it never wraps.
        """
        row = torch.remainder(index, self.full_steps).reshape(1)
        images = self.images.index_select(0, row).reshape(self.batch, 1, 28, 28)
        images = images.to(torch.float32).div(255)  # what ToTensor did per sample
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, self.labels.index_select(0, row).reshape(self.batch)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            # No weight-cast cache: a cached cast would be captured once and then go stale.
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def compute_loss(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, model output) for one batch, uncompiled."""
        with self._autocast():
            output = self.network(images)
        return self.criterion(output.float(), labels), output

    def _forward_loss(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = self.batch_for(index)
        loss, output = self.compute_loss(images, labels)
        return loss, output, labels

    def _body(self) -> None:
        """One training step with no host synchronisation; the graph captures exactly this."""
        if self.capture == "reduce-overhead":
            compiler: Any = torch.compiler  # (torch leaves this one unannotated)
            compiler.cudagraph_mark_step_begin()
        loss, output, labels = self._forward_loss_fn(self.counter)
        loss.backward()
        self._optimizer_step()
        with torch.no_grad():
            self.loss_sum += loss.detach()
            self.correct += (output.argmax(dim=1) == labels).sum()
            self.counter += 1

    def eager_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._body()

    def run_step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.eager_step()

    # Warm-up, capture, restore. ---------------------------------------------------------
    def _state(self) -> list[torch.Tensor]:
        return [*self.model.parameters(), *self.model.buffers()]

    def _restore(self, saved: list[torch.Tensor]) -> None:
        """Back to the initial weights and an empty optimizer, in place (a graph holds them)."""
        with torch.no_grad():
            for live, initial in zip(self._state(), saved, strict=True):
                live.copy_(initial)
            for state in self.optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        value.zero_()
            for tensor in (self.counter, self.loss_sum, self.correct):
                tensor.zero_()
        torch.manual_seed(self.config.seed)

    def warm_up(self) -> WarmupStats:
        wants_graph = self.capture in GRAPH_MODES
        eager_steps = self.config.warmup_steps
        if wants_graph:
            eager_steps = max(eager_steps, CAPTURE_WARMUP_STEPS)
        # Not capped at the epoch's steps: the batch fetch wraps around (``batch_for``), so a
        # warm-up may be longer than a short epoch, and a capture always gets its eager steps.
        if eager_steps == 0:
            return WarmupStats(0, 0.0)
        saved = [t.detach().clone() for t in self._state()]
        synchronize(self.device)
        start = time.perf_counter()
        # A graph's warm-up runs on a side stream, as PyTorch's CUDA graph guidance asks, so
        # that lazily created state (cuBLAS workspaces, autotuning) is not made mid-capture.
        cuda: Any = torch.cuda  # (torch leaves Stream's constructor unannotated)
        stream = cuda.Stream(self.device) if wants_graph else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            first = self._first_step()
            for _ in range(eager_steps - 1):
                self.eager_step()
        if stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
        capture_seconds = None
        if self.capture in GRAPH_MODES:
            synchronize(self.device)
            capture_start = time.perf_counter()
            self._capture()
            if self.graph is not None:
                for _ in range(2):  # the first replays upload the graph: keep them out
                    self.graph.replay()
            synchronize(self.device)
            capture_seconds = time.perf_counter() - capture_start
        synchronize(self.device)
        seconds = time.perf_counter() - start
        self._restore(saved)
        return WarmupStats(eager_steps, seconds, first, capture_seconds)

    def time_steps(
        self,
        steps: int,
        around: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> list[float]:
        """Seconds of each of ``steps`` more eager steps, each inside ``around()`` (e.g. DDP's
        ``no_sync``) and synchronised, then back to the initial state (call it after
        ``warm_up``, which leaves the trainer there). Outside the figures: for measurements
        beside the epochs (``bench.ddp``'s time split)."""
        saved = [t.detach().clone() for t in self._state()]
        seconds = []
        for _ in range(steps):
            synchronize(self.device)
            start = time.perf_counter()
            with around():
                self.eager_step()
            synchronize(self.device)
            seconds.append(time.perf_counter() - start)
        self._restore(saved)
        return seconds

    def _first_step(self) -> float:
        """The first step, where compilation happens; a failed compile falls back to eager."""
        start = time.perf_counter()
        try:
            self.eager_step()
        except Exception as exc:
            if self.capture not in COMPILED_MODES:
                raise
            self._fall_back(f"torch.compile failed ({type(exc).__name__}: {_first_line(exc)})")
            self.eager_step()
        synchronize(self.device)
        return time.perf_counter() - start

    def _capture(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates and owns the grads
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body()
        except Exception as exc:
            self._fall_back(f"CUDA graph capture failed ({type(exc).__name__}: {_first_line(exc)})")
            return
        self.graph = graph

    def _fall_back(self, why: str) -> None:
        self.graph = None
        self._forward_loss_fn = self._forward_loss
        self._optimizer_step = self.optimizer.step
        self.capture = "none"
        self.details.update(capture="none", capture_note=why)

    # Epochs and evaluation. -------------------------------------------------------------
    def train_epoch(self, epoch: int, progress: Progress) -> EpochStats:
        steps = self.steps_per_epoch
        self.model.train()
        with torch.no_grad():
            for tensor in (self.counter, self.loss_sum, self.correct):
                tensor.zero_()
        progress.start_epoch(epoch, steps, self.batch)
        synchronize(self.device)
        start = time.perf_counter()
        self.clock.start()
        for done in range(1, steps + 1):
            self.run_step()
            self.clock.mark()
            progress.update(done)
        synchronize(self.device)
        seconds = time.perf_counter() - start
        samples = steps * self.batch
        stats = EpochStats(
            epoch=epoch,
            seconds=seconds,
            steps=steps,
            samples=samples,
            loss=self.loss_sum.item() / steps,  # the one read of the epoch's metrics
            accuracy=self.correct.item() / samples,
            step_seconds=self.clock.durations(),
        )
        progress.end_epoch(stats)
        return stats

    def evaluate(self, limit: int | None) -> tuple[float, int]:
        """Accuracy on the first ``limit`` test images (all by default); in a data-parallel
        run on this rank's share of them (every world_size-th), which ``bench.ddp`` adds up."""
        images, labels = self.test_images, self.test_labels
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        step = self.shard.world_size
        images, labels = images[self.shard.rank :: step], labels[self.shard.rank :: step]
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(labels), EVAL_BATCH):
                batch = images[start : start + EVAL_BATCH].unsqueeze(1).to(self.device)
                inputs = batch.to(torch.float32).div_(255)
                predicted = self.model(inputs).argmax(dim=1).cpu()
                correct += int((predicted == labels[start : start + EVAL_BATCH]).sum())
        self.model.train()
        return correct / max(len(labels), 1), len(labels)

    def result_extras(self) -> dict[str, Any]:
        return {"distributed": None}  # one process

    def close(self) -> None:
        if self._saved_backend is not None:
            self._saved_backend.apply()
            self._saved_backend = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
