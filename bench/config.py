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
    given = {key: value for key, value in values.items() if key in settable}
    loop = str(values.get("loop") or "seed")
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
