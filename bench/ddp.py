"""One process of a data-parallel run: DistributedDataParallel over torch.distributed.

torchrun (``bench.launch``) starts one of these per GPU (NCCL) or per CPU share (gloo) with
``--ddp-worker``; each reads its rank from torchrun's environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``), joins the process group (``env://``),
trains the fast or throughput loop on its share of every global batch (``ResidentTrainer``'s
``Shard``) with the model inside ``DistributedDataParallel``, and rank 0 writes the result.
On CUDA the step runs eagerly or torch.compile'd (by loop), never captured in a CUDA graph
(``bench.loops.resident``'s ``DATA_PARALLEL_AUTO_CAPTURE`` and ``DATA_PARALLEL_NO_GRAPH`` say
why).

What the result adds (``distributed``, docs/bench.md):

* samples/s in total (all ranks' samples over the slowest rank's epoch time) and per rank;
* the scaling efficiency against the 1-process run that ``bench.launch`` ran first:
  total / (world size x 1-process samples/s);
* where a step's time goes. A step with the gradient all-reduce is timed against the same
  step inside DDP's ``no_sync()`` (no all-reduce), each synchronised, a few steps after the
  warm-up (and undone, like the warm-up): the difference is the all-reduce time the step
  waits for, the part the backward pass does not hide, including waiting for a slower rank.
  A DDP communication hook counts the buckets and bytes all-reduced per step, and with gloo
  also the time each all-reduce takes from launch to completion (overlapped with the
  backward, so not additive); NCCL's futures complete on the GPU stream, so that host-side
  time would mean nothing there and is left out.
* the topology: each rank's host, device, PCI bus and threads; NCCL's version; which GPU
  pairs have peer-to-peer access (``torch.cuda.can_device_access_peer``).

DDP broadcasts BatchNorm's running statistics from rank 0 at each forward (its default,
``broadcast_buffers=True``); that broadcast happens inside ``no_sync()`` too, so it counts as
compute here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import BenchConfig
from .errors import BenchError, BenchUsageError
from .loops import EpochStats, Progress, WarmupStats
from .loops.resident import ResidentTrainer, Shard

PROBE_STEPS = 20  # steps timed with and without the all-reduce, after the warm-up
# A collective that waits longer than this is a hang: torch.distributed raises instead.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
ENVIRONMENT = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
# gradient_as_bucket_view: the gradients are views into the all-reduce buckets, which saves
# copying each gradient into its bucket and back every step (kernel launches in a step that
# is launch-bound at batch 16). static_graph stays off: DDP with static_graph=True inside
# no_sync(), which the time split uses, fails or stops all-reducing (pytorch/pytorch#143580).
GRADIENT_AS_BUCKET_VIEW = True
STATIC_GRAPH = False
DDP_OPTIONS = {"gradient_as_bucket_view": GRADIENT_AS_BUCKET_VIEW, "static_graph": STATIC_GRAPH}


@dataclass(frozen=True)
class WorkerEnv:
    """This process's place in the run, as torchrun's environment gives it."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerEnv:
        missing = [name for name in ENVIRONMENT if name not in environ]
        if missing:
            raise BenchUsageError(
                f"--ddp-worker runs under torchrun, which sets {', '.join(missing)}",
                "start a data-parallel run with --nproc-per-node N",
            )
        return cls(
            rank=int(environ["RANK"]),
            local_rank=int(environ["LOCAL_RANK"]),
            world_size=int(environ["WORLD_SIZE"]),
            local_world_size=int(environ["LOCAL_WORLD_SIZE"]),
            node_rank=int(environ.get("GROUP_RANK", "0")),
        )


def device_and_backend(device_type: str, env: WorkerEnv) -> tuple[torch.device, str]:
    """cuda: this rank's GPU (cuda:LOCAL_RANK) and NCCL; cpu: the CPU and gloo."""
    if device_type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
        return device, "nccl"
    return torch.device("cpu"), "gloo"


def join(backend: str, env: WorkerEnv, device: torch.device) -> None:
    """Join the process group torchrun's rendezvous set up (MASTER_ADDR / MASTER_PORT)."""
    options: dict[str, Any] = {"backend": backend, "timeout": COLLECTIVE_TIMEOUT}
    if device.type == "cuda":
        options["device_id"] = device  # binds the NCCL communicator to this rank's GPU
    dist.init_process_group(**options)
    if dist.get_world_size() != env.world_size:
        raise BenchError(
            f"the process group has {dist.get_world_size()} ranks, not {env.world_size}"
        )


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """torchrun stops the other workers with the signal it got (SIGINT on Ctrl-C) or SIGTERM
    when one worker failed: both end the run as Ctrl-C does, so finished epochs are saved."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


class AllReduceMeter:
    """A DDP communication hook: all-reduces each gradient bucket as DDP's default does, and
    counts buckets and bytes; with ``timed`` also host time from launch to completion."""

    def __init__(self, *, timed: bool) -> None:
        self.timed = timed
        self.lock = threading.Lock()  # gloo completes futures on its own threads
        self.reset()

    def reset(self) -> None:
        self.buckets = 0
        self.bytes = 0
        self.busy_seconds = 0.0

    def hook(self, state: Any, bucket: Any) -> torch.futures.Future[torch.Tensor]:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        buffer = bucket.buffer()
        with self.lock:
            self.buckets += 1
            self.bytes += buffer.numel() * buffer.element_size()
        started = time.perf_counter()
        future = default_hooks.allreduce_hook(state, bucket)
        if not self.timed:
            return future

        def finished(done: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            with self.lock:
                self.busy_seconds += time.perf_counter() - started
            return done.value()

        return future.then(finished)


class _GlobalProgress:
    """Shows the epoch as all ranks together train it: the global batch in the live rate,
    and the end-of-epoch line once the ranks' figures are combined."""

    def __init__(self, inner: Progress, world_size: int) -> None:
        self.inner, self.world_size = inner, world_size

    def start_epoch(self, epoch: int, total_steps: int, batch_size: int) -> None:
        self.inner.start_epoch(epoch, total_steps, batch_size * self.world_size)

    def update(self, steps_done: int, loss: float | None = None) -> None:
        self.inner.update(steps_done, loss)

    def end_epoch(self, stats: EpochStats) -> None:
        pass  # the combined stats are reported by DataParallelTrainer.train_epoch


class DataParallelTrainer:
    """The fast/throughput loop on every rank, combined: a ``Trainer`` (``bench.loops``)."""

    def __init__(
        self,
        config: BenchConfig,
        device: torch.device,
        files: dict[str, Path],
        *,
        env: WorkerEnv,
        backend: str,
        baseline: dict[str, Any] | None,
    ) -> None:
        self.config, self.device, self.env, self.backend = config, device, env, backend
        self.baseline = baseline
        self.meter = AllReduceMeter(timed=backend == "gloo")
        self.ddp: DistributedDataParallel | None = None
        self.inner = ResidentTrainer(
            config, device, files, shard=Shard(env.rank, env.world_size), wrap=self._wrap
        )
        self.steps_per_epoch = self.inner.steps_per_epoch
        # The inner trainer's own dict, so that a compile that falls back to eager at the
        # first step (its capture and capture_note) shows in what the result records.
        self.details: dict[str, Any] = self.inner.details
        self.details.update(
            data_parallel="torch.nn.parallel.DistributedDataParallel",
            ddp_options=dict(DDP_OPTIONS),
            per_rank_batch_size=self.inner.batch,
        )
        self.rank_epochs: list[list[dict[str, Any]]] = []
        self.time_split: dict[str, Any] | None = None
        self.topology = self._topology()

    def _wrap(self, model: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(
            model,
            device_ids=ids,
            gradient_as_bucket_view=GRADIENT_AS_BUCKET_VIEW,
            static_graph=STATIC_GRAPH,
        )
        # DDP checks a hook's annotations against its own classes; this module's are strings
        # (postponed annotations), so the hook goes in through an unannotated lambda.
        hook = lambda state, bucket: self.meter.hook(state, bucket)  # noqa: E731, PLW0108
        self.ddp.register_comm_hook(None, hook)
        return self.ddp

    def apply_global_settings(self) -> None:
        self.inner.apply_global_settings()

    def warm_up(self) -> WarmupStats:
        warm = self.inner.warm_up()
        assert self.ddp is not None
        start = time.perf_counter()
        synced: list[float] = []
        alone: list[float] = []
        # Alternated, one pair at a time: a machine whose load drifts over the probes (other
        # work starting, the CPU clocking down) then slows both kinds alike; 20 of one kind
        # and then 20 of the other made a 1-process run's wait -31% on a loaded 2-core machine.
        for _ in range(PROBE_STEPS):
            synced += self.inner.time_steps(1)
            alone += self.inner.time_steps(1, self.ddp.no_sync)
        probes = time.perf_counter() - start
        self.meter.reset()
        per_rank = gather(
            {"step_seconds": statistics.median(synced), "compute_seconds": statistics.median(alone)}
        )
        self.time_split = _time_split(per_rank)
        return WarmupStats(
            warm.steps + 2 * PROBE_STEPS,
            warm.seconds + probes,
            warm.first_step_seconds,
            warm.capture_seconds,
        )

    def train_epoch(self, epoch: int, progress: Progress) -> EpochStats:
        self.meter.reset()
        local = self.inner.train_epoch(epoch, _GlobalProgress(progress, self.env.world_size))
        mine = {
            "rank": self.env.rank,
            "seconds": local.seconds,
            "samples": local.samples,
            "loss": local.loss,
            "correct": round(local.accuracy * local.samples),
            "allreduce_buckets": self.meter.buckets,
            "allreduce_bytes": self.meter.bytes,
            "allreduce_busy_seconds": self.meter.busy_seconds if self.meter.timed else None,
        }
        ranks = gather(mine)
        self.rank_epochs.append(ranks)
        samples = sum(r["samples"] for r in ranks)
        stats = EpochStats(
            epoch=epoch,
            seconds=max(r["seconds"] for r in ranks),  # the epoch ends with the slowest rank
            steps=local.steps,
            samples=samples,
            loss=sum(r["loss"] for r in ranks) / len(ranks),
            accuracy=sum(r["correct"] for r in ranks) / samples,
            step_seconds=local.step_seconds,  # rank 0's steps
        )
        progress.end_epoch(stats)
        return stats

    def evaluate(self, limit: int | None) -> tuple[float, int]:
        accuracy, count = self.inner.evaluate(limit)  # this rank's share of the test images
        shares = gather((round(accuracy * count), count))
        total = sum(n for _, n in shares)
        return sum(c for c, _ in shares) / max(total, 1), total

    def result_extras(self) -> dict[str, Any]:
        return {"distributed": self.facts()}

    def close(self) -> None:
        self.inner.close()

    # What the result records. ---------------------------------------------------------------
    def _topology(self) -> dict[str, Any]:
        ranks = gather(_rank_facts(self.env, self.device))
        cuda = self.device.type == "cuda"
        nccl_module: Any = torch.cuda.nccl  # (torch leaves version() unannotated)
        nccl = nccl_module.version() if cuda else None
        return {
            "ranks": ranks,
            "hosts": sorted({r["host"] for r in ranks}),
            "nccl_version": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl,
            "p2p": _peer_access(self.env.local_world_size) if cuda else None,
        }

    def facts(self) -> dict[str, Any]:
        totals = _throughput(self.rank_epochs)
        return {
            "world_size": self.env.world_size,
            "backend": self.backend,
            "nnodes": len(self.topology["hosts"]),
            "nproc_per_node": self.env.local_world_size,
            "launcher": "torchrun (torch.distributed.run)",
            "global_batch_size": self.config.batch_size,
            "per_rank_batch_size": self.inner.batch,
            "threads_per_rank": torch.get_num_threads() if self.device.type == "cpu" else None,
            **totals,
            "time_split": self._time_split_with_traffic(),
            "scaling": _scaling(self.baseline, totals, self.env.world_size),
            "topology": self.topology,
        }

    def _time_split_with_traffic(self) -> dict[str, Any] | None:
        if self.time_split is None:
            return None
        split = dict(self.time_split)
        last = self.rank_epochs[-1] if self.rank_epochs else None
        steps = max(self.steps_per_epoch, 1)
        if last:
            mine = last[0]
            split["allreduce_buckets_per_step"] = mine["allreduce_buckets"] / steps
            split["allreduce_bytes_per_step"] = mine["allreduce_bytes"] / steps
            busy = mine["allreduce_busy_seconds"]
            split["allreduce_busy_seconds_per_step"] = None if busy is None else busy / steps
        return split


def _rank_facts(env: WorkerEnv, device: torch.device) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "rank": env.rank,
        "local_rank": env.local_rank,
        "node_rank": env.node_rank,
        "host": socket.gethostname(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts["device_name"] = props.name
        bus = [getattr(props, f"pci_{part}_id", None) for part in ("domain", "bus", "device")]
        facts["pci_bus_id"] = (
            f"{bus[0]:04x}:{bus[1]:02x}:{bus[2]:02x}.0" if None not in bus else None
        )
    return facts


def _peer_access(local_gpus: int) -> list[list[bool]] | None:
    """can_device_access_peer for every pair of this node's GPUs (None for one GPU)."""
    if local_gpus < 2:
        return None
    return [
        [i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(local_gpus)]
        for i in range(local_gpus)
    ]


def _time_split(per_rank: list[dict[str, float]]) -> dict[str, Any]:
    step = statistics.mean(r["step_seconds"] for r in per_rank)
    compute = statistics.mean(r["compute_seconds"] for r in per_rank)
    wait = step - compute  # can come out slightly negative: two medians of noisy steps
    return {
        "method": (
            f"median of {PROBE_STEPS} synchronised steps with the gradient all-reduce against "
            f"{PROBE_STEPS} inside DDP no_sync(), alternated, after the warm-up; mean over ranks"
        ),
        "probe_steps": PROBE_STEPS,
        "step_seconds": step,
        "compute_seconds": compute,
        "allreduce_wait_seconds": wait,
        "allreduce_wait_fraction": wait / step if step > 0 else None,
        "per_rank": [{"rank": i, **r} for i, r in enumerate(per_rank)],
    }


def _throughput(rank_epochs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    if not rank_epochs:
        return {"samples_per_second_total": None, "samples_per_second_per_rank": None}
    ranks = len(rank_epochs[0])
    seconds = [sum(epoch[r]["seconds"] for epoch in rank_epochs) for r in range(ranks)]
    samples = [sum(epoch[r]["samples"] for epoch in rank_epochs) for r in range(ranks)]
    wall = sum(max(r["seconds"] for r in epoch) for epoch in rank_epochs)
    return {
        "samples_per_second_total": sum(samples) / wall,
        "samples_per_second_per_rank": [n / s for n, s in zip(samples, seconds, strict=True)],
    }


def _scaling(
    baseline: dict[str, Any] | None, totals: dict[str, Any], world_size: int
) -> dict[str, Any] | None:
    """This run against the 1-process run of the same launch (None when there was none)."""
    total = totals["samples_per_second_total"]
    if baseline is None or total is None:
        return None
    one = baseline["summary"]["samples_per_second"]
    return {
        "baseline_run_id": baseline["run_id"],
        "baseline_samples_per_second": one,
        "ideal_samples_per_second": one * world_size,
        "efficiency": total / (one * world_size),
        "speedup": total / one,
    }


def read_baseline(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# The worker's entry point (python -m bench --ddp-worker ..., started by bench.launch). ------
def worker_main(
    values: dict[str, Any],
    *,
    report_to: Path | None,
    baseline_path: Path | None,
    error_dir: Path | None,
) -> int:
    """Run this rank's part; rank 0 writes the result and tells the launcher where."""
    from .errors import EXIT_INTERRUPTED

    try:
        env = WorkerEnv.from_environ(os.environ)
    except BenchError as exc:
        report_error(exc, None, None)
        return exc.exit_code
    try:
        with terminate_as_interrupt():
            return _work(env, values, report_to, baseline_path)
    except BenchError as exc:
        report_error(exc, env.rank, error_dir)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        leave()


def _work(
    env: WorkerEnv, values: dict[str, Any], report_to: Path | None, baseline_path: Path | None
) -> int:
    from .config import configs_for
    from .data import verify
    from .errors import EXIT_INTERRUPTED
    from .progress import SilentProgress, make_progress
    from .run import run_one

    device, backend = device_and_backend(str(values["device"]), env)
    join(backend, env, device)
    (config,) = configs_for(values, [str(device)])
    if config.world_size != env.world_size:
        raise BenchError(
            f"torchrun started {env.world_size} ranks for a run of {config.world_size}"
        )
    files = verify(config.data_dir)
    progress = make_progress(config.epochs) if env.rank == 0 else SilentProgress(config.epochs)
    baseline = read_baseline(baseline_path) if env.rank == 0 else None

    def make(c: BenchConfig, d: torch.device, f: dict[str, Path]) -> DataParallelTrainer:
        return DataParallelTrainer(c, d, f, env=env, backend=backend, baseline=baseline)

    outcome = run_one(
        config,
        files,
        progress,
        requested_device=str(values["device"]),
        make=make,
        write=env.rank == 0,
    )
    if outcome is None:
        return 0
    progress.info(f"  saved {outcome.json_path} and {outcome.txt_path.name}")
    if report_to is not None:
        report_to.write_text(json.dumps({"result": str(outcome.json_path)}))
    return EXIT_INTERRUPTED if outcome.interrupted else 0


def exit_worker(code: int) -> NoReturn:
    """End this rank without the interpreter's teardown; everything it writes is written.

    DistributedDataParallel keeps its process group, and so gloo's worker threads, alive to
    the end of the process: ``destroy_process_group`` and freeing the model do not release
    it (a 2-rank gloo run still has its ``pt_gloo_runloop`` threads after both). A rank whose
    interpreter then shuts down around those threads can abort with SIGABRT ("terminate
    called without an active exception"), after its work is done: torchrun then reports a
    finished run as failed. pytorch/pytorch#179291 describes the crash. doctor's collective
    probe ends the same way.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def report_error(exc: BenchError, rank: int | None, error_dir: Path | None) -> None:
    """Into ``error_dir`` for the launcher, which prints the first failing rank's error only
    (every rank failing alike would print it once per rank); on stderr without a launcher."""
    record = {"message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
    if error_dir is not None and rank is not None:
        (error_dir / f"rank{rank}.json").write_text(json.dumps(record))
        return
    where = "" if rank is None else f"rank {rank}: "
    print(f"error: {where}{exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
