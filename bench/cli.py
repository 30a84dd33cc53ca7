"""``python -m bench``: arguments → configs → runs → a summary on stdout.

Bad input is one ``error:`` line and a ``hint:`` line on stderr and exit code 2 (1 for a data
or results-directory problem, 130 after Ctrl-C), never a traceback. Progress goes to stderr;
stdout gets the summary, or with ``--json`` one JSON document (the results' paths and
summaries) for ``setup-tool bench`` and scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .config import BenchConfig, configs_for
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, BenchError
from .options import KINDS, OPTIONS, Option


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _print_error(message, f"see `{self.prog} --help`")
        sys.exit(EXIT_USAGE)


def _print_error(message: str, hint: str | None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def help_text(option: Option) -> str:
    """An option's help with its default, as both ``python -m bench`` and setup-tool show it."""
    default = option.default_text
    return f"{option.help} Default: {default}." if default else option.help


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m bench",
        description=(
            "Time the seed's MNIST CNN training (the 2022 experiment) on this machine's devices, "
            "and optionally the fast and throughput loops; write one JSON result per run."
        ),
    )
    for option in OPTIONS:
        if option.kind == "flag":
            p.add_argument(option.flag, action="store_true", help=help_text(option))
        else:
            p.add_argument(
                option.flag,
                type=KINDS[option.kind],
                default=option.default,
                choices=option.choices,
                metavar=option.metavar,
                help=help_text(option),
            )
    return p


def configs_from(args: argparse.Namespace, devices: Sequence[str]) -> list[BenchConfig]:
    return configs_for(vars(args), devices)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Validate what needs no torch first, so bad flags fail fast.
        configs_from(args, ["cpu"])
        from .torchcheck import require_torch

        require_torch()
        from .data import verify
        from .devices import resolve
        from .progress import make_progress
        from .results import ensure_writable
        from .run import run_all

        configs = configs_from(args, resolve(args.device))
        files = verify(args.data_dir)
        ensure_writable(args.results_dir)
        progress = make_progress(args.epochs)
        outcomes = run_all(configs, files, progress, requested_device=args.device)
    except BenchError as exc:
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:  # before any epoch started: nothing to save
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_summary([o.result for o in outcomes], [o.json_path for o in outcomes], args.json)
    return EXIT_INTERRUPTED if any(o.interrupted for o in outcomes) else 0


def _print_summary(results: list[dict[str, Any]], paths: list[Path], as_json: bool) -> None:
    if as_json:
        doc = [
            {"path": str(path), "run_id": r["run_id"], "complete": r["complete"], **r["summary"]}
            for r, path in zip(results, paths, strict=True)
        ]
        print(json.dumps(doc, indent=2))
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
        print(
            f"{r['config']['device']:<10} {r['config']['loop']:<11} {r['config']['batch_size']:>5} "
            f"{spe:>9} {sps:>11} {train:>9} {test:>8}  {path}{flag}"
        )
