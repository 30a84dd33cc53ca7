"""``python -m bench``: arguments → configs → runs → a summary on stdout.

Bad input is one ``error:`` line and a ``hint:`` line on stderr and exit code 2 (1 for a data
or results-directory problem, 130 after Ctrl-C), never a traceback. Progress goes to stderr;
stdout gets the summary, or with ``--json`` one JSON document (the results' paths and
summaries) for ``setup-tool bench`` and scripts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .config import BenchConfig, configs_for
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, BenchError
from .options import KINDS, OPTIONS, Option
from .summary import print_summary


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
    # What bench.launch passes to the workers it starts through torchrun (not for users).
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--report-to", "--error-dir", "--baseline-result"):
        p.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    groups = {
        "distributed": p.add_argument_group("data-parallel run (torch.distributed, torchrun)")
    }
    for option in OPTIONS:
        group = groups.get(option.group, p)
        if option.kind == "flag":
            group.add_argument(option.flag, action="store_true", help=help_text(option))
        else:
            group.add_argument(
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
    values = {option.dest: getattr(args, option.dest) for option in OPTIONS}
    if args.ddp_worker:  # one rank of a data-parallel run, started by torchrun
        from .ddp import exit_worker, worker_main

        exit_worker(
            worker_main(
                values,
                report_to=args.report_to,
                baseline_path=args.baseline_result,
                error_dir=args.error_dir,
            )
        )
    if args.nproc_per_node is not None:
        from .launch import launch_main

        return launch_main(values)
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
    print_summary([o.result for o in outcomes], [o.json_path for o in outcomes], args.json)
    return EXIT_INTERRUPTED if any(o.interrupted for o in outcomes) else 0
