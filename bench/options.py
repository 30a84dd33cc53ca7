"""Every option of the benchmark, defined once: ``python -m bench`` and ``setup-tool bench`` are
both generated from ``OPTIONS``.

An ``Option`` names its flag, its kind, its default, its help text and, for choices, the tuple
in ``bench.config`` that holds the allowed values. ``bench.cli`` builds its argparse parser from
the table; setup-tool builds its typer command from it and turns the values back into this
command line (``to_argv``), so neither can accept a flag the other lacks. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import CAPTURES, LOOP_DEFAULTS, LOOPS, LOSSES, PRECISIONS, SEED_LR

# Option kinds: the Python type of the value (None = not given, where the default is None).
KINDS = {"int": int, "float": float, "str": str, "path": Path, "flag": bool}


def _per_loop(key: str) -> str:
    """A per-loop default as help shows it: "16 (seed, fast), 4096 (throughput)"."""
    by_value: dict[object, list[str]] = {}
    for loop, defaults in LOOP_DEFAULTS.items():
        by_value.setdefault(defaults[key], []).append(loop)
    return ", ".join(f"{value} ({', '.join(loops)})" for value, loops in by_value.items())


@dataclass(frozen=True)
class Option:
    flag: str  # "--max-steps"
    kind: str  # a key of KINDS
    help: str
    default: object = None  # None: not given (the loop or the run decides)
    choices: tuple[str, ...] | None = None
    shown_default: str | None = None  # what help says when the default is None or per loop
    group: str = "run"  # "run", "output" or "distributed" (help sections)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def metavar(self) -> str | None:
        """The value's placeholder in help: the choices, or what kind of value it is."""
        if self.kind == "flag":
            return None
        if self.choices:
            return "[" + "|".join(self.choices) + "]"
        return {"int": "N", "float": "X", "path": "DIR"}.get(self.kind, "TEXT")

    @property
    def default_text(self) -> str | None:
        """The default as ``--help`` shows it (None: nothing to show)."""
        if self.shown_default is not None:
            return self.shown_default
        if self.kind == "flag" or self.default is None:
            return None
        return str(self.default)


OPTIONS: tuple[Option, ...] = (
    Option(
        "--device",
        "str",
        "auto (first CUDA GPU, else MPS, else CPU), cpu, cuda, cuda:N, mps, or all (each in turn).",
        default="auto",
    ),
    Option(
        "--loop",
        "str",
        "seed: the faithful 2022 loop; fast: the same training, overhead removed; "
        "throughput: large batch, bf16, compiled; all: each in turn.",
        choices=(*LOOPS, "all"),
        shown_default="seed (fast with --nproc-per-node)",
    ),
    Option("--epochs", "int", "Epochs to time (20 = the seed's).", default=1),
    Option(
        "--max-steps",
        "int",
        "Stop each epoch after N steps (a short run; plotted as partial epochs).",
        shown_default="whole epochs",
    ),
    Option("--batch-size", "int", "Samples per step.", shown_default=_per_loop("batch_size")),
    Option("--lr", "float", "Adam learning rate.", shown_default=f"{SEED_LR:g} (the seed's)"),
    Option("--seed", "int", "Random seed.", default=0),
    Option(
        "--warmup-steps",
        "int",
        "Untimed steps before the first epoch; the weights are restored after them.",
        shown_default=_per_loop("warmup_steps"),
    ),
    Option(
        "--capture",
        "str",
        "fast/throughput: how the step is compiled or captured (auto: compile-graph on CUDA, "
        "for a data-parallel run there none (fast) or compile (throughput); none elsewhere).",
        default="auto",
        choices=CAPTURES,
    ),
    Option(
        "--precision",
        "str",
        "fast/throughput: fp32, tf32 (TF32 matmuls too) or bf16 autocast (auto: bf16 for "
        "throughput on CUDA, else fp32).",
        default="auto",
        choices=PRECISIONS,
    ),
    Option(
        "--loss",
        "str",
        "seed: the seed's softmax output into CrossEntropyLoss (a double softmax); logits.",
        choices=LOSSES,
        shown_default=_per_loop("loss"),
    ),
    Option(
        "--test-limit",
        "int",
        "Evaluate on the first N test images only.",
        shown_default="all 10000; with --max-steps, as many as an epoch trains on, at least 1000",
    ),
    Option("--data-dir", "path", "Another copy of the four MNIST files.", shown_default="bundled"),
    Option(
        "--results-dir",
        "path",
        "Where results go.",
        default=Path("results"),
        group="output",
    ),
    Option(
        "--label",
        "str",
        "This machine's name in reports.",
        shown_default="the host name",
        group="output",
    ),
    Option(
        "--lock-hash",
        "str",
        "The environment's lock hash, recorded in the result.",
        group="output",
    ),
    Option("--json", "flag", "Print the runs' summaries as JSON on stdout.", group="output"),
    Option(
        "--nproc-per-node",
        "int",
        "Data-parallel run (DistributedDataParallel, fast or throughput loop): N processes on "
        "this machine, one per GPU with NCCL or N CPU processes with gloo, started by torchrun; "
        "the batch is split across all processes, and a 1-process run comes first for the "
        "scaling efficiency.",
        shown_default="1 process, no torch.distributed",
        group="distributed",
    ),
    Option(
        "--nnodes",
        "int",
        "torchrun: how many machines take part (each runs this same command).",
        shown_default="1",
        group="distributed",
    ),
    Option(
        "--node-rank",
        "int",
        "torchrun: this machine's rank, 0 to nnodes-1 (needed with --rdzv-backend static).",
        group="distributed",
    ),
    Option(
        "--rdzv-endpoint",
        "str",
        "torchrun: HOST:PORT of the rendezvous, on the first machine (several machines).",
        shown_default="a free port on 127.0.0.1",
        group="distributed",
    ),
    Option(
        "--rdzv-backend",
        "str",
        "torchrun: rendezvous backend.",
        choices=("c10d", "static"),
        shown_default="c10d",
        group="distributed",
    ),
    Option(
        "--rdzv-id",
        "str",
        "torchrun: a job id, the same on every machine.",
        shown_default="setup-tool-bench",
        group="distributed",
    ),
    Option(
        "--no-baseline",
        "flag",
        "Data-parallel run: skip the 1-process run that the scaling efficiency is measured "
        "against.",
        group="distributed",
    ),
)

BY_DEST = {option.dest: option for option in OPTIONS}


def to_argv(values: Mapping[str, object]) -> list[str]:
    """The ``python -m bench`` arguments for ``values`` ({dest: value}; None and False omitted)."""
    argv: list[str] = []
    for dest, value in values.items():
        option = BY_DEST[dest]
        if value is None or value is False:
            continue
        if option.kind == "flag":
            argv.append(option.flag)
        else:
            argv += [option.flag, str(value)]
    return argv
