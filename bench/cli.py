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

from bench.config import CAPTURES, LOOPS, LOSSES, PRECISIONS, BenchConfig, make_config
from bench.errors import EXIT_INTERRUPTED, EXIT_USAGE, BenchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _print_error(message, f"see `{self.prog} --help`")
        sys.exit(EXIT_USAGE)


def _print_error(message: str, hint: str | None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m bench",
        description=(
            "Time the seed's MNIST CNN training (the 2022 experiment) on this machine's devices, "
            "and optionally the fast and throughput loops; write one JSON result per run."
        ),
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (best here), cpu, cuda, cuda:N, mps, or all (each in turn). Default: auto.",
    )
    p.add_argument(
        "--loop",
        default="seed",
        choices=[*LOOPS, "all"],
        help="seed: the faithful 2022 loop; fast: same training, overhead removed; "
        "throughput: large batch, bf16, compiled; all: each in turn. Default: seed.",
    )
    p.add_argument(
        "--epochs", type=int, default=1, help="Epochs to time (20 = the seed's). Default: 1."
    )
    p.add_argument("--max-steps", type=int, help="Stop each epoch after N steps (short runs).")
    p.add_argument("--batch-size", type=int, help="Default: 16 (seed, fast), 4096 (throughput).")
    p.add_argument("--lr", type=float, help="Adam learning rate. Default: 1e-4 (the seed's).")
    p.add_argument("--seed", type=int, default=0, help="Random seed. Default: 0.")
    p.add_argument("--warmup-steps", type=int, help="Untimed steps before the first epoch.")
    p.add_argument("--capture", choices=CAPTURES, default="auto", help="fast/throughput only.")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="fast/throughput only.")
    p.add_argument("--loss", choices=LOSSES, help="seed: softmax into CrossEntropyLoss.")
    p.add_argument("--test-limit", type=int, help="Evaluate on the first N test images only.")
    p.add_argument("--data-dir", type=Path, help="Another copy of the four MNIST files.")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="Default: results/.")
    p.add_argument("--label", help="This machine's name in reports. Default: the host name.")
    p.add_argument("--lock-hash", help="The environment's lock hash, recorded in the result.")
    p.add_argument("--json", action="store_true", help="Print a JSON summary on stdout.")
    return p


def configs_from(args: argparse.Namespace, devices: Sequence[str]) -> list[BenchConfig]:
    loops = LOOPS if args.loop == "all" else (args.loop,)
    return [
        make_config(
            loop,
            device=device,
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            warmup_steps=args.warmup_steps,
            loss=args.loss,
            capture=args.capture,
            precision=args.precision,
            test_limit=args.test_limit,
            data_dir=args.data_dir,
            results_dir=args.results_dir,
            label=args.label,
            lock_hash=args.lock_hash,
        )
        for device in devices
        for loop in loops
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Validate what needs no torch first, so bad flags fail fast.
        configs_from(args, ["cpu"])
        from bench.data import verify
        from bench.devices import resolve
        from bench.progress import make_progress
        from bench.results import ensure_writable
        from bench.run import run_all

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
