"""Result files → comparison rows and PNG plots. Imports matplotlib, never torch.

``setup-tool report`` calls this with any number of result files or directories, from any
number of machines. Rows compare s/epoch and samples/s, with the speed-up against the slowest
run by samples/s (runs of different batch sizes or step caps compare by samples/s, not by
epoch time). Two plots:

* ``epoch_times.png``: seconds per epoch against the epoch number, one line per run, labelled
  machine · device · loop (the seed's chart, with a legend that names what each line is);
* ``seconds_per_epoch.png``: mean s/epoch per run as bars, plus, when a run has the seed's
  configuration (``seed_comparable``), the seed's published figures as hatched reference bars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import SCHEMA

# The seed's published epoch-1 times (the 2022 blog post, as docs/facts.md "The seed benchmark"
# records them; the M1 CPU was 170-180 s).
SEED_REFERENCES = (
    ("RTX A6000 (seed, 2022)", 27.0),
    ("M1 8-core GPU, mps (seed, 2022)", 130.0),
    ("M1 CPU (seed, 2022)", 175.0),
    ("Xeon Silver 4210R, 40 cores (seed, 2022)", 180.0),
)


class ReportError(Exception):
    """No usable result among the paths given."""


def load_results(paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every bench result under ``paths`` (files, or directories of ``*.json``), and skips."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise ReportError(f"{path}: no such file or directory")
    results, skipped = [], []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            skipped.append(f"{file}: not readable JSON ({exc})")
            continue
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            skipped.append(f"{file}: not a bench result")
            continue
        if not data.get("epochs"):
            skipped.append(f"{file}: no finished epoch")
            continue
        data["_path"] = str(file)
        results.append(data)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise ReportError(f"no benchmark results in {where}")
    return results, skipped


def run_label(result: dict[str, Any]) -> str:
    device = result["device"]
    name = device.get("name") or device["type"]
    config = result["config"]
    return (
        f"{result['machine']['label']} · {name} ({config['device']}) · {config['loop']} "
        f"b{config['batch_size']}"
    )


@dataclass(frozen=True)
class Row:
    label: str
    machine: str
    device: str
    loop: str
    batch_size: int
    epochs: int
    seconds_per_epoch: float
    samples_per_second: float
    speedup: float  # samples/s over the slowest run's
    train_accuracy: float | None
    test_accuracy: float | None
    complete: bool
    partial_epochs: bool  # cut short by --max-steps
    path: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def comparison(results: list[dict[str, Any]]) -> list[Row]:
    """One row per run, fastest first."""
    slowest = min(r["summary"]["samples_per_second"] for r in results)
    rows = [
        Row(
            label=run_label(r),
            machine=r["machine"]["label"],
            device=f"{r['device'].get('name') or r['device']['type']} ({r['config']['device']})",
            loop=r["config"]["loop"],
            batch_size=r["config"]["batch_size"],
            epochs=r["summary"]["epochs_completed"],
            seconds_per_epoch=r["summary"]["seconds_per_epoch"],
            samples_per_second=r["summary"]["samples_per_second"],
            speedup=r["summary"]["samples_per_second"] / slowest,
            train_accuracy=r["summary"]["train_accuracy"],
            test_accuracy=r["summary"]["test_accuracy"],
            complete=r["complete"],
            partial_epochs=r["config"]["max_steps"] is not None,
            path=r["_path"],
        )
        for r in results
    ]
    return sorted(rows, key=lambda row: -row.samples_per_second)


@dataclass(frozen=True)
class Plotted:
    """What a plot shows, for tests and for --json: series label → values."""

    path: Path
    series: dict[str, list[float]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_epoch_times(results: list[dict[str, Any]], path: Path) -> Plotted:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    series = {}
    last_epoch = 1
    for r in results:
        label = run_label(r)
        epochs = [e["epoch"] for e in r["epochs"]]
        last_epoch = max([last_epoch, *epochs])
        seconds = [e["seconds"] for e in r["epochs"]]
        series[label] = seconds
        ax.plot(epochs, seconds, marker="o", label=label)
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    # Whole epochs only (MaxNLocator alone falls back to fractions when one epoch is shown).
    ax.xaxis.set_major_locator(
        MultipleLocator(1) if last_epoch <= 25 else MaxNLocator(integer=True)
    )
    ax.set_xlim(0.5, last_epoch + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds per epoch")
    ax.set_yscale("log")
    ax.set_title("MNIST CNN training time per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Plotted(path, series)


def plot_seconds_per_epoch(results: list[dict[str, Any]], path: Path) -> Plotted:
    plt = _pyplot()
    bars = [(run_label(r), r["summary"]["seconds_per_epoch"], False) for r in results]
    if any(r.get("seed_comparable") for r in results):
        bars += [(name, seconds, True) for name, seconds in SEED_REFERENCES]
    bars.sort(key=lambda bar: bar[1])
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(bars)))
    positions = range(len(bars))
    ax.barh(
        list(positions),
        [b[1] for b in bars],
        color=["lightgray" if b[2] else "tab:blue" for b in bars],
        hatch=None,
    )
    for pos, (_, seconds, reference) in zip(positions, bars, strict=True):
        ax.text(
            seconds,
            pos,
            f" {seconds:.3g} s" + (" (published)" if reference else ""),
            va="center",
            fontsize="small",
        )
    ax.set_yticks(list(positions), [b[0] for b in bars], fontsize="small")
    ax.set_xscale("log")
    ax.set_xlim(right=max(b[1] for b in bars) * 8)  # room for the value labels
    ax.set_xlabel("seconds per epoch (log scale; gray: the seed's published figures)")
    ax.set_title("MNIST CNN: mean seconds per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Plotted(path, {b[0]: [b[1]] for b in bars})
