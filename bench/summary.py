"""The summary ``python -m bench`` prints on stdout when its runs end: a table, or with
``--json`` one JSON document (each run's path, id, completeness and summary). No torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_summary(results: list[dict[str, Any]], paths: list[Path], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps([_json_entry(r, p) for r, p in zip(results, paths, strict=True)], indent=2)
        )
        return
    print(
        f"{'device':<10} {'loop':<11} {'batch':>5} {'s/epoch':>9} {'samples/s':>11} "
        f"{'train acc':>9} {'test acc':>8}  result"
    )
    for r, path in zip(results, paths, strict=True):
        s = r["summary"]
        spe = f"{s['seconds_per_epoch']:.3f}" if s["seconds_per_epoch"] else "-"
        sps = f"{s['samples_per_second']:,.0f}" if s["samples_per_second"] else "-"
        train = f"{s['train_accuracy']:.4f}" if s["train_accuracy"] is not None else "-"
        test = f"{s['test_accuracy']:.4f}" if s["test_accuracy"] is not None else "-"
        flag = "" if r["complete"] else " (incomplete)"
        loop = r["config"]["loop"] + _processes(r)
        print(
            f"{r['config']['device']:<10} {loop:<11} {r['config']['batch_size']:>5} "
            f"{spe:>9} {sps:>11} {train:>9} {test:>8}  {path}{flag}"
        )
    for r in results:
        line = scaling_line(r)
        if line:
            print(line)


def _processes(result: dict[str, Any]) -> str:
    dist = result.get("distributed")
    return f" x{dist['world_size']}" if isinstance(dist, dict) else ""


def _json_entry(result: dict[str, Any], path: Path) -> dict[str, Any]:
    entry = {
        "path": str(path),
        "run_id": result["run_id"],
        "complete": result["complete"],
        **result["summary"],
    }
    dist = result.get("distributed")
    if isinstance(dist, dict):
        scaling = dist.get("scaling") or {}
        entry.update(
            world_size=dist["world_size"],
            backend=dist["backend"],
            samples_per_second_per_rank=dist["samples_per_second_per_rank"],
            scaling_efficiency=scaling.get("efficiency"),
        )
    return entry


def scaling_line(result: dict[str, Any]) -> str | None:
    """ "2 processes (gloo): 1,234 samples/s, 617/rank; 1 process 700: efficiency 88%;
    all-reduce wait 12% of a step" for a data-parallel run, else None."""
    dist = result.get("distributed")
    if not isinstance(dist, dict) or not dist.get("samples_per_second_total"):
        return None
    per_rank = dist["samples_per_second_per_rank"]
    world = dist["world_size"]
    text = (
        f"{world} process{'es' if world > 1 else ''} ({dist['backend']}): "
        f"{dist['samples_per_second_total']:,.0f} samples/s, "
        f"{sum(per_rank) / len(per_rank):,.0f}/rank"
    )
    scaling = dist.get("scaling")
    if scaling:
        text += (
            f"; 1 process {scaling['baseline_samples_per_second']:,.0f}: "
            f"efficiency {scaling['efficiency']:.0%}"
        )
    split = dist.get("time_split") or {}
    if split.get("allreduce_wait_fraction") is not None:
        text += f"; all-reduce wait {split['allreduce_wait_fraction']:.0%} of a step"
    return text
