"""Result files → comparison rows and PNG plots. Imports matplotlib, never torch.

``setup-tool report`` calls this with any number of result files or directories, from any
number of machines. Rows compare s/epoch and samples/s, with the speed-up against the slowest
run by samples/s (runs of different batch sizes or step caps compare by samples/s, not by
epoch time). Two plots:

* ``epoch_times.png``: seconds per epoch against the epoch number, one line per run, labelled
  machine · device · loop · batch (the seed's chart, with a legend that names each line);
* ``seconds_per_epoch.png``: mean s/epoch per run as bars, plus, when a run has the seed's
  configuration (``seed_comparable``), the seed's published figures as gray reference bars.

An epoch cut short (``--max-steps``) is not a full epoch: both plots and the table scale its
time to a full epoch from its own per-sample rate, and say so (dashed lines, hatched bars,
"est. from N of M steps"). Runs whose labels would be the same (same machine, device, loop and
batch) are told apart by their start time. The legend sits beside the axes, never over data.

A file that is not a well-formed result (a missing ``summary``, a number that is a string) is
skipped with a line that says what is wrong, never a traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from . import SCHEMA
from .config import TRAIN_SAMPLES

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


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(value: object) -> bool:
    return _number(value) and value > 0


def _optional_number(value: object) -> bool:
    return value is None or _number(value)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(value: object) -> bool:
    return value is None or _int(value)


# The fields the report reads, and what each must be: (path, check, what it should be).
REQUIRED: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("config.loop", _text, "a string"),
    ("config.device", _text, "a string"),
    ("config.batch_size", _int, "an integer"),
    ("config.max_steps", _optional_int, "an integer or null"),
    ("machine.label", _text, "a string"),
    ("device.type", _text, "a string"),
    ("summary.epochs_completed", _int, "an integer"),
    ("summary.seconds_per_epoch", _positive, "a positive number"),
    ("summary.samples_per_second", _positive, "a positive number"),
    ("summary.train_accuracy", _optional_number, "a number or null"),
    ("summary.test_accuracy", _optional_number, "a number or null"),
)
EPOCH_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("epoch", _int, "an integer"),
    ("seconds", _positive, "a positive number"),
    ("steps", _int, "an integer"),
    ("samples", _int, "an integer"),
)


DISTRIBUTED_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("world_size", _int, "an integer"),
    ("backend", _text, "a string"),
    ("samples_per_second_total", _positive, "a positive number"),
)
SCALING_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("baseline_samples_per_second", _positive, "a positive number"),
    ("efficiency", _number, "a number"),
)


def _lookup(data: dict[str, Any], path: str) -> tuple[bool, object]:
    value: object = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def result_problem(data: dict[str, Any]) -> str | None:
    """What makes ``data`` unusable as a bench result, or None when the report can read it."""
    for path, check, expected in REQUIRED:
        found, value = _lookup(data, path)
        if not found:
            return f"no {path}"
        if not check(value):
            return f"{path} is {json.dumps(value)}, not {expected}"
    epochs = data.get("epochs")
    if not isinstance(epochs, list) or not epochs:
        return "no finished epoch"
    for index, epoch in enumerate(epochs):
        if not isinstance(epoch, dict):
            return f"epochs[{index}] is not an object"
        problem = _fields_problem(epoch, EPOCH_FIELDS, f"epochs[{index}]")
        if problem:
            return problem
    return _distributed_problem(data.get("distributed"))


def _fields_problem(
    data: dict[str, Any], checks: tuple[tuple[str, Callable[[object], bool], str], ...], where: str
) -> str | None:
    for key, check, expected in checks:
        if not check(data.get(key)):
            return f"{where}.{key} is {json.dumps(data.get(key))}, not {expected}"
    return None


def _distributed_problem(dist: object) -> str | None:
    """``distributed`` is null (one process; absent in older files) or a data-parallel run."""
    if dist is None:
        return None
    if not isinstance(dist, dict):
        return "distributed is not an object"
    problem = _fields_problem(dist, DISTRIBUTED_FIELDS, "distributed")
    scaling = dist.get("scaling")
    if problem or scaling is None:
        return problem
    if not isinstance(scaling, dict):
        return "distributed.scaling is not an object"
    return _fields_problem(scaling, SCALING_FIELDS, "distributed.scaling")


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
        problem = result_problem(data)
        if problem is not None:
            skipped.append(f"{file}: {problem}")
            continue
        data["_path"] = str(file)
        results.append(data)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise ReportError(f"no benchmark results in {where}")
    return results, skipped


# Labels. ------------------------------------------------------------------------------------
def run_label(result: dict[str, Any]) -> str:
    device = result["device"]
    name = device.get("name") or device["type"]
    config = result["config"]
    world = _world_size(result)
    processes = f" ×{world}" if world else ""
    return (
        f"{result['machine']['label']} · {name} ({config['device']}) · {config['loop']}"
        f"{processes} b{config['batch_size']}"
    )


def run_labels(results: list[dict[str, Any]]) -> list[str]:
    """One label per run, unique: runs that would share one get their start time, then their
    run id, then (the same result read from two places) their file."""
    labels = [run_label(r) for r in results]
    for extra in (_started, _run_id, _file):
        counts = Counter(labels)
        labels = [
            f"{label} · {extra(r)}" if counts[label] > 1 else label
            for label, r in zip(labels, results, strict=True)
        ]
    return labels


def _started(result: dict[str, Any]) -> str:
    started = str(result.get("started_at") or "")
    return started[:16].replace("T", " ") or "unknown start"  # 2026-11-28 14:57


def _run_id(result: dict[str, Any]) -> str:
    return str(result.get("run_id"))


def _file(result: dict[str, Any]) -> str:
    return str(result.get("_path"))


# Partial epochs. ----------------------------------------------------------------------------
def full_epoch_samples(result: dict[str, Any]) -> int:
    """How many samples a whole epoch of this run trains on (the resident loops drop the last
    partial batch)."""
    loop = result.get("loop")
    dropped = loop.get("dropped_samples_per_epoch") if isinstance(loop, dict) else None
    return TRAIN_SAMPLES - dropped if isinstance(dropped, int) else TRAIN_SAMPLES


def epoch_is_partial(result: dict[str, Any], epoch: dict[str, Any]) -> bool:
    return int(epoch["samples"]) < full_epoch_samples(result)


def full_epoch_seconds(result: dict[str, Any], epoch: dict[str, Any]) -> float:
    """The epoch's time, scaled to a full epoch at its own per-sample rate when cut short."""
    seconds = float(epoch["seconds"])
    if not epoch_is_partial(result, epoch) or epoch["samples"] <= 0:
        return seconds
    return seconds * full_epoch_samples(result) / int(epoch["samples"])


def partial_note(result: dict[str, Any]) -> str | None:
    """ "est. from 50 of 3750 steps" for a run of partial epochs, else None."""
    first = result["epochs"][0]
    if not epoch_is_partial(result, first):
        return None
    full_steps = full_epoch_samples(result) // max(int(result["config"]["batch_size"]), 1)
    return f"est. from {first['steps']} of {full_steps} steps"


@dataclass(frozen=True)
class Row:
    label: str
    machine: str
    device: str
    loop: str
    batch_size: int
    epochs: int
    seconds_per_epoch: float  # a full epoch; scaled from the steps run when partial_epochs
    measured_seconds_per_epoch: float  # the mean of the epochs as they ran
    samples_per_second: float
    speedup: float  # samples/s over the slowest run's
    train_accuracy: float | None
    test_accuracy: float | None
    complete: bool
    partial_epochs: bool  # cut short by --max-steps: seconds_per_epoch is an estimate
    path: str
    processes: int | None = None  # a data-parallel run's world size; None: one process

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def comparison(results: list[dict[str, Any]]) -> list[Row]:
    """One row per run, fastest first."""
    slowest = min(r["summary"]["samples_per_second"] for r in results)
    rows = [_row(r, label, slowest) for r, label in zip(results, run_labels(results), strict=True)]
    return sorted(rows, key=lambda row: -row.samples_per_second)


def _row(r: dict[str, Any], label: str, slowest: float) -> Row:
    full = [full_epoch_seconds(r, e) for e in r["epochs"]]
    return Row(
        label=label,
        machine=r["machine"]["label"],
        device=f"{r['device'].get('name') or r['device']['type']} ({r['config']['device']})",
        loop=r["config"]["loop"],
        batch_size=r["config"]["batch_size"],
        epochs=r["summary"]["epochs_completed"],
        seconds_per_epoch=sum(full) / len(full),
        measured_seconds_per_epoch=r["summary"]["seconds_per_epoch"],
        samples_per_second=r["summary"]["samples_per_second"],
        speedup=r["summary"]["samples_per_second"] / slowest,
        train_accuracy=r["summary"]["train_accuracy"],
        test_accuracy=r["summary"]["test_accuracy"],
        complete=bool(r.get("complete")),
        partial_epochs=partial_note(r) is not None,
        path=str(r.get("_path", "")),
        processes=_world_size(r),
    )


def _world_size(result: dict[str, Any]) -> int | None:
    dist = result.get("distributed")
    return int(dist["world_size"]) if isinstance(dist, dict) else None


# Plots. -------------------------------------------------------------------------------------
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


def _save(fig: Any, path: Path) -> None:
    # bbox_inches="tight" grows the image to hold a legend placed beside the axes.
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def epoch_times_figure(results: list[dict[str, Any]]) -> tuple[Any, dict[str, list[float]]]:
    """The per-epoch chart (a matplotlib figure, not yet saved) and its series."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    series: dict[str, list[float]] = {}
    last_epoch = 1
    for r, label in zip(results, run_labels(results), strict=True):
        epochs = [e["epoch"] for e in r["epochs"]]
        last_epoch = max([last_epoch, *epochs])
        seconds = [full_epoch_seconds(r, e) for e in r["epochs"]]
        note = partial_note(r)
        shown = f"{label} ({note})" if note else label
        series[shown] = seconds
        ax.plot(epochs, seconds, marker="o", linestyle="--" if note else "-", label=shown)
    # Whole epochs only (MaxNLocator alone falls back to fractions when one epoch is shown).
    ax.xaxis.set_major_locator(
        MultipleLocator(1) if last_epoch <= 25 else MaxNLocator(integer=True)
    )
    ax.set_xlim(0.5, last_epoch + 0.5)
    ax.set_xlabel("epoch")
    partial = any(partial_note(r) for r in results)
    ax.set_ylabel("seconds per epoch" + (" (dashed: estimated from a partial epoch)" * partial))
    ax.set_yscale("log")
    ax.set_title("MNIST CNN training time per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig, series


def plot_epoch_times(results: list[dict[str, Any]], path: Path) -> Plotted:
    fig, series = epoch_times_figure(results)
    _save(fig, path)
    return Plotted(path, series)


def _bars(results: list[dict[str, Any]]) -> list[tuple[str, float, str]]:
    """(label, seconds per full epoch, kind): kind is "run", "estimate" or "published"."""
    bars = []
    for r, row in zip(results, comparison_in_order(results), strict=True):
        note = partial_note(r)
        label = f"{row.label} ({note})" if note else row.label
        bars.append((label, row.seconds_per_epoch, "estimate" if note else "run"))
    if any(r.get("seed_comparable") for r in results):
        bars += [(name, seconds, "published") for name, seconds in SEED_REFERENCES]
    return sorted(bars, key=lambda bar: bar[1])


def comparison_in_order(results: list[dict[str, Any]]) -> list[Row]:
    """``comparison`` rows in the order of ``results`` (not sorted by speed)."""
    slowest = min(r["summary"]["samples_per_second"] for r in results)
    return [_row(r, label, slowest) for r, label in zip(results, run_labels(results), strict=True)]


BAR_STYLE = {
    "run": {"color": "tab:blue"},
    "estimate": {"color": "white", "edgecolor": "tab:blue", "hatch": "//"},
    "published": {"color": "lightgray"},
}


def seconds_per_epoch_figure(
    results: list[dict[str, Any]],
) -> tuple[Any, list[tuple[str, float, str]]]:
    plt = _pyplot()
    bars = _bars(results)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(bars)))
    for pos, (_, seconds, kind) in enumerate(bars):
        ax.barh([pos], [seconds], **BAR_STYLE[kind])
        suffix = {"published": " (published)", "estimate": " (estimated)"}.get(kind, "")
        value = f"{seconds:,.0f}" if seconds >= 1000 else f"{seconds:.3g}"
        ax.text(seconds, pos, f" {value} s{suffix}", va="center", fontsize="small")
    ax.set_yticks(list(range(len(bars))), [b[0] for b in bars], fontsize="small")
    ax.set_xscale("log")
    ax.set_xlim(right=max(b[1] for b in bars) * 8)  # room for the value labels
    ax.set_xlabel(_bars_axis_label({kind for _, _, kind in bars}))
    ax.set_title("MNIST CNN: mean seconds per epoch")
    fig.tight_layout()
    return fig, bars


def _bars_axis_label(kinds: set[str]) -> str:
    """The x-axis label names only the kinds of bar that are drawn."""
    notes = ["log scale"]
    if "estimate" in kinds:
        notes.append("hatched: a full epoch estimated from a partial one")
    if "published" in kinds:
        notes.append("gray: the seed's published figures")
    return f"seconds per epoch ({'; '.join(notes)})"


def plot_seconds_per_epoch(results: list[dict[str, Any]], path: Path) -> Plotted:
    fig, bars = seconds_per_epoch_figure(results)
    _save(fig, path)
    return Plotted(path, {label: [seconds] for label, seconds, _ in bars})


# Data-parallel runs: the scaling table and plot. ------------------------------------------
@dataclass(frozen=True)
class ScalingRow:
    label: str
    backend: str
    processes: int
    global_batch_size: int
    samples_per_second: float  # all processes together
    samples_per_second_per_rank: float  # their mean
    baseline_samples_per_second: float | None  # the 1-process run of the same launch
    ideal_samples_per_second: float | None  # processes x the baseline
    efficiency: float | None  # measured / ideal
    allreduce_wait_fraction: float | None  # of a step: the all-reduce the backward did not hide
    path: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def scaling(results: list[dict[str, Any]]) -> list[ScalingRow]:
    """One row per data-parallel run (1-process baselines included), by label then size."""
    rows = []
    for r, label in zip(results, run_labels(results), strict=True):
        dist = r.get("distributed")
        if not isinstance(dist, dict):
            continue
        per_rank = dist.get("samples_per_second_per_rank") or [dist["samples_per_second_total"]]
        baseline = dist.get("scaling") or {}
        split = dist.get("time_split") or {}
        rows.append(
            ScalingRow(
                label=label,
                backend=dist["backend"],
                processes=dist["world_size"],
                global_batch_size=r["config"]["batch_size"],
                samples_per_second=dist["samples_per_second_total"],
                samples_per_second_per_rank=sum(per_rank) / len(per_rank),
                baseline_samples_per_second=baseline.get("baseline_samples_per_second"),
                ideal_samples_per_second=baseline.get("ideal_samples_per_second"),
                efficiency=baseline.get("efficiency"),
                allreduce_wait_fraction=split.get("allreduce_wait_fraction"),
                path=str(r.get("_path", "")),
            )
        )
    return sorted(rows, key=lambda row: (row.label, row.processes))


def scaling_figure(results: list[dict[str, Any]]) -> tuple[Any, dict[str, list[float]]] | None:
    """samples/s against processes for each data-parallel run and its 1-process baseline,
    with ideal scaling (processes x the baseline) dashed; None without such a run."""
    measured = [row for row in scaling(results) if row.baseline_samples_per_second]
    if not measured:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[float]] = {}
    most = max(row.processes for row in measured)
    for row in measured:
        one = row.baseline_samples_per_second or 0.0
        (line,) = ax.plot([1, row.processes], [one, row.samples_per_second], marker="o")
        ax.plot(
            [1, row.processes], [one, one * row.processes], linestyle="--", color=line.get_color()
        )
        name = f"{row.label} ({row.backend}, {row.efficiency:.0%} of ideal)"
        line.set_label(name)
        series[name] = [one, row.samples_per_second]
        series[f"{name}: ideal"] = [one, one * row.processes]
    ax.plot([], [], linestyle="--", color="gray", label="ideal: processes x the 1-process run")
    ax.set_xticks(sorted({1, *(row.processes for row in measured)}))
    ax.set_xlim(0.5, most + 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("processes (data-parallel ranks)")
    ax.set_ylabel("samples/s, all processes together")
    ax.set_title("MNIST CNN data-parallel scaling")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig, series


def plot_scaling(results: list[dict[str, Any]], path: Path) -> Plotted | None:
    drawn = scaling_figure(results)
    if drawn is None:
        return None
    fig, series = drawn
    _save(fig, path)
    return Plotted(path, series)
