"""The frozen configuration of one benchmark run, and the per-loop defaults.

A run is one loop on one device. ``BenchConfig`` holds what was asked for; "auto" values
(capture, precision, channels-last) are resolved by the loop for the device it runs on and
recorded in the result next to the request, so a result says both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import BenchUsageError

LOOPS = ("seed", "fast", "throughput")
CAPTURES = ("auto", "none", "compile", "graph", "compile-graph", "reduce-overhead")
# A data-parallel step may be compiled, never captured in a CUDA graph (bench.loops.resident).
DATA_PARALLEL_CAPTURES = ("auto", "none", "compile")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")  # tf32: matmuls too (convs are by default)
LOSSES = ("seed", "logits")  # seed: softmax output into CrossEntropyLoss (the double softmax)

# What each loop does unless told otherwise. seed is the 2022 experiment as published; fast
# keeps its batch, optimizer and data order but fixes the loss; throughput trades the batch
# size for hardware utilisation (docs/PERFORMANCE.md has the measurements behind these).
LOOP_DEFAULTS: dict[str, dict[str, Any]] = {
    "seed": {"batch_size": 16, "loss": "seed", "warmup_steps": 10},
    "fast": {"batch_size": 16, "loss": "logits", "warmup_steps": 10},
    "throughput": {"batch_size": 4096, "loss": "logits", "warmup_steps": 5},
}

SEED_LR = 1e-4
TRAIN_SAMPLES = 60_000
TEST_SAMPLES = 10_000
# A short run (--max-steps) evaluates on as many test images as an epoch trained on, at least
# this many: all 10,000 took 147 s of a 50-step "quick check" of the seed loop on a 2-core CPU.
SHORT_RUN_MIN_TEST = 1_000


@dataclass(frozen=True)
class BenchConfig:
    loop: str = "seed"
    device: str = "cpu"  # a concrete device ("cpu", "cuda:0", "mps") once resolved
    epochs: int = 1
    max_steps: int | None = None  # cap on training steps per epoch (short runs)
    batch_size: int = 16
    lr: float = SEED_LR
    seed: int = 0
    warmup_steps: int = 10
    loss: str = "seed"
    capture: str = "auto"  # fast and throughput loops only
    precision: str = "auto"  # fast and throughput loops only
    channels_last: bool | None = None  # None: the loop decides per device
    cudnn_benchmark: bool | None = None  # None: the loop decides (seed: torch's default)
    compile_optimizer: bool | None = None  # None: with compile-graph on CUDA
    test_limit: int | None = None  # evaluate on the first N test images only
    test_limit_auto: bool = False  # test_limit was chosen for a short run, not asked for
    data_dir: Path | None = None  # None: the copy bundled with this package
    results_dir: Path = Path("results")
    label: str | None = None  # the machine's name in reports; default: the host name
    lock_hash: str | None = None  # the environment's lock hash, when setup-tool knows it
    data_parallel: bool = False  # DistributedDataParallel under torchrun (--nproc-per-node)
    world_size: int = 1  # processes in the data-parallel run; batch_size is split among them

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["data_dir"] = str(self.data_dir) if self.data_dir else None
        data["results_dir"] = str(self.results_dir)
        return data

    @property
    def seed_comparable(self) -> bool:
        """Whether this run can stand next to the seed's published figures."""
        return (
            self.loop == "seed"
            and self.loss == "seed"
            and self.batch_size == 16
            and self.lr == SEED_LR
            and self.max_steps is None
        )


def loops_for(loop: str) -> tuple[str, ...]:
    """The loops a ``--loop`` value names, in the order they run."""
    return LOOPS if loop == "all" else (loop,)


def configs_for(values: Mapping[str, object], devices: Sequence[str]) -> list[BenchConfig]:
    """One validated config per device and loop, from option values ({option dest: value},
    as ``bench.options`` names them; None: not given)."""
    settable = {f.name for f in fields(BenchConfig)} - {"loop", "device"}
    given: dict[str, object] = {k: v for k, v in values.items() if k in settable}
    loop = str(values.get("loop") or "seed")
    check_no_distributed_options(values)
    if values.get("nproc_per_node") is not None:
        given.update(data_parallel=True, world_size=check_data_parallel(values))
        loop = str(values.get("loop") or "fast")
    return [
        make_config(name, device=device, **given) for device in devices for name in loops_for(loop)
    ]


def make_config(loop: str, **given: Any) -> BenchConfig:
    """A validated config for ``loop``; ``None`` values take the loop's defaults."""
    if loop not in LOOPS:
        raise BenchUsageError(
            f"unknown --loop {loop!r}", f"choose one of: {', '.join((*LOOPS, 'all'))}"
        )
    values = {k: v for k, v in given.items() if v is not None}
    config = replace(BenchConfig(loop=loop, **LOOP_DEFAULTS[loop]), **values)
    validate(config)
    if config.max_steps is not None and config.test_limit is None:
        trained = config.max_steps * config.batch_size
        limit = min(TEST_SAMPLES, max(SHORT_RUN_MIN_TEST, trained))
        config = replace(config, test_limit=limit, test_limit_auto=True)
    return config


DATA_PARALLEL_LOOPS = ("fast", "throughput")
DATA_PARALLEL_DEVICES = ("auto", "cpu", "cuda")
DISTRIBUTED_ONLY = ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_backend", "rdzv_id")


def check_data_parallel(values: Mapping[str, object]) -> int:
    """Refuse a data-parallel request that cannot run (before torchrun or CUDA starts);
    return the world size (processes per machine x machines)."""
    nproc, nnodes = _count(values, "nproc_per_node", 1), _count(values, "nnodes", 1)
    node_rank = values.get("node_rank")
    if isinstance(node_rank, int) and not 0 <= node_rank < nnodes:
        raise BenchUsageError(f"--node-rank {node_rank} is not between 0 and {nnodes - 1}")
    if values.get("rdzv_backend") == "static" and nnodes > 1 and node_rank is None:
        raise BenchUsageError(
            "--rdzv-backend static needs --node-rank on every machine",
            "give each machine its rank, or use --rdzv-backend c10d (ranks are assigned)",
        )
    if nnodes > 1 and not values.get("rdzv_endpoint"):
        raise BenchUsageError(
            f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (the first machine's)",
            "every machine runs the same command with the same --rdzv-endpoint and --rdzv-id",
        )
    device = str(values.get("device") or "auto")
    if device not in DATA_PARALLEL_DEVICES:
        raise BenchUsageError(
            f"--nproc-per-node runs on --device auto, cpu or cuda, not {device!r}",
            "each process takes the GPU of its local rank (cuda:LOCAL_RANK) or the CPU",
        )
    loop = values.get("loop")
    if loop is not None and loop not in DATA_PARALLEL_LOOPS:
        raise BenchUsageError(
            f"--nproc-per-node runs the fast or throughput loop, not --loop {loop}",
            "the seed loop stays the single-process experiment it reproduces",
        )
    return nproc * nnodes


def _count(values: Mapping[str, object], key: str, default: int) -> int:
    value = values.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or value < 1:
        raise BenchUsageError(f"--{key.replace('_', '-')} must be a positive integer, not {value}")
    return value


def check_no_distributed_options(values: Mapping[str, object]) -> None:
    """torchrun's options mean nothing without --nproc-per-node: say so instead of ignoring."""
    if values.get("nproc_per_node") is not None:
        return
    for key in (*DISTRIBUTED_ONLY, "no_baseline"):
        if values.get(key) not in (None, False):
            flag = "--" + key.replace("_", "-")
            raise BenchUsageError(f"{flag} needs --nproc-per-node", "add --nproc-per-node N")


def validate(config: BenchConfig) -> None:
    """Refuse a configuration that cannot run, with the flag to change."""
    positive = {
        "--epochs": config.epochs,
        "--batch-size": config.batch_size,
        "--max-steps": config.max_steps,
        "--test-limit": config.test_limit,
    }
    for flag, value in positive.items():
        if value is not None and value <= 0:
            raise BenchUsageError(f"{flag} must be a positive integer, not {value}")
    if config.warmup_steps < 0:
        raise BenchUsageError(f"--warmup-steps must be 0 or more, not {config.warmup_steps}")
    if not config.lr > 0:
        raise BenchUsageError(f"--lr must be positive, not {config.lr}")
    if config.batch_size > TRAIN_SAMPLES:
        raise BenchUsageError(
            f"--batch-size {config.batch_size} is larger than the training set ({TRAIN_SAMPLES})"
        )
    for flag, choice, allowed in (
        ("--capture", config.capture, CAPTURES),
        ("--precision", config.precision, PRECISIONS),
        ("--loss", config.loss, LOSSES),
    ):
        if choice not in allowed:
            raise BenchUsageError(
                f"unknown {flag} {choice!r}", f"choose one of: {', '.join(allowed)}"
            )
    if config.data_parallel:
        _validate_data_parallel(config)


def _validate_data_parallel(config: BenchConfig) -> None:
    if config.capture not in DATA_PARALLEL_CAPTURES:
        raise BenchUsageError(
            f"--capture {config.capture} does not apply to a data-parallel run",
            "its steps are not captured in a CUDA graph (the all-reduce is timed between "
            "steps): use --capture none or compile (auto picks by loop)",
        )
    if config.batch_size % config.world_size:
        raise BenchUsageError(
            f"--batch-size {config.batch_size} does not split evenly across "
            f"{config.world_size} processes",
            f"give a multiple of {config.world_size}, e.g. --batch-size "
            f"{max(1, config.batch_size // config.world_size) * config.world_size}",
        )
