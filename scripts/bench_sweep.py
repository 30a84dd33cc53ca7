"""``python scripts/bench_sweep.py``: several loop variants in one process, a table, and a profile.

This is how the defaults of ``--loop fast`` and ``--loop throughput`` were chosen (see
docs/PERFORMANCE.md): each variant is built by the same trainers the benchmark uses, warmed
up, timed for whole epochs and evaluated; a failing variant is reported, not fatal. With
``--profile FILE`` a few hundred steps of the seed loop and of each fast variant run under
torch.profiler, and FILE gets, per variant, wall time per step against device-kernel time per
step and kernels per step (launch-bound when the device is idle most of the step), then the
top kernels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from setup_tool_bench.config import make_config
from setup_tool_bench.data import verify
from setup_tool_bench.devices import resolve, synchronize
from setup_tool_bench.loops import make_trainer
from setup_tool_bench.progress import SilentProgress


def _head_with_relu(trainer: Any) -> None:
    """The model as first read (a ReLU between the linear layers), for comparison."""
    old = trainer.model.classifier
    trainer.model.classifier = torch.nn.Sequential(
        old[0], old[1], torch.nn.ReLU(), old[2], torch.nn.ReLU(), old[3]
    )


def _dropout_elementwise(trainer: Any) -> None:
    trainer.model.features[8] = torch.nn.Dropout(0.5)


HOOKS = {"head-relu": _head_with_relu, "dropout": _dropout_elementwise}

# (name, overrides, hook). Round 1 (docs/PERFORMANCE.md) also had none, graph channels-last,
# graph without autotuning, compile-graph channels-last and reduce-overhead.
# (name, overrides, hook). Round 1 ran the first block with the model-only compile and a
# ReLU between the linear layers; rounds 2 and 3 the rest (docs/PERFORMANCE.md has the tables).
FAST = [
    ("fast none", {"capture": "none"}, None),
    ("fast graph", {"capture": "graph", "channels_last": True}, None),
    ("fast graph nchw", {"capture": "graph", "channels_last": False}, None),
    ("fast graph no-autotune", {"capture": "graph", "cudnn_benchmark": False}, None),
    ("fast reduce-overhead", {"capture": "reduce-overhead"}, None),
    ("fast c-graph nchw fusedadam", {"capture": "compile-graph", "compile_optimizer": False}, None),
    ("fast c-graph", {"capture": "compile-graph"}, None),
    ("fast c-graph cl", {"capture": "compile-graph", "channels_last": True}, None),
    ("fast c-graph tf32", {"capture": "compile-graph", "precision": "tf32"}, None),
    ("seed-loss graph", {"capture": "graph", "loss": "seed", "channels_last": False}, None),
    ("seed-loss dropout", {"capture": "graph", "loss": "seed"}, "dropout"),
    ("seed-loss head-relu", {"capture": "graph", "loss": "seed"}, "head-relu"),
]
THROUGHPUT = [
    ("tp graph b1024", {"capture": "graph", "batch_size": 1024}, None),
    ("tp c-graph b1024", {"batch_size": 1024}, None),
    ("tp c-graph b1024 nchw", {"batch_size": 1024, "channels_last": False}, None),
    ("tp reduce-overhead b1024", {"capture": "reduce-overhead", "batch_size": 1024}, None),
    ("tp c-graph b2048", {"batch_size": 2048}, None),
    ("tp c-graph b4096", {"batch_size": 4096}, None),
]
MAX_STEPS: int | None = None  # --max-steps: for a smoke test on the CPU
PROFILED = ("fast c-graph",)


def run_variant(
    name: str,
    loop: str,
    overrides: dict[str, Any],
    hook: str | None,
    device: str,
    epochs: int,
    files: dict[str, Path],
    profile: list[str] | None,
) -> dict[str, Any]:
    config = make_config(
        loop, device=device, epochs=epochs, **{"max_steps": MAX_STEPS, **overrides}
    )
    row: dict[str, Any] = {"name": name, "loop": loop, "hook": hook, **overrides}
    trainer = None
    try:
        trainer = make_trainer(config, torch.device(device), files)
        trainer.apply_global_settings()
        if hook:
            HOOKS[hook](trainer)
        warm = trainer.warm_up()
        stats = [trainer.train_epoch(e, SilentProgress()) for e in range(1, epochs + 1)]
        accuracy, _ = trainer.evaluate(None)
        seconds = [s.seconds for s in stats]
        steps = sorted(x for s in stats for x in s.step_seconds)
        row.update(
            capture=trainer.details.get("capture"),
            note=trainer.details.get("capture_note"),
            warmup_s=warm.seconds,
            first_step_s=warm.first_step_seconds,
            capture_s=warm.capture_seconds,
            epoch_s=seconds,
            best_epoch_s=min(seconds),
            samples_per_s=sum(s.samples for s in stats) / sum(seconds),
            best_samples_per_s=max(s.samples / s.seconds for s in stats),
            train_acc_epoch1=stats[0].accuracy,
            train_acc=stats[-1].accuracy,
            test_acc=accuracy,
            step_ms_p50=steps[len(steps) // 2] * 1000 if steps else None,
        )
        if profile is not None and (name in PROFILED or loop == "seed"):
            profile.append(profile_steps(name, trainer, device))
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        traceback.print_exc()
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        torch._dynamo.reset()  # each variant compiles afresh, below the recompile limit
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(_line(row), flush=True)
    return row


def profile_steps(name: str, trainer: Any, device: str, steps: int = 200) -> str:
    """Wall time against kernel time for ``steps`` steps of an already warmed trainer."""
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    run = getattr(trainer, "run_step", None)
    if run is None:  # the seed trainer: its own loop over the DataLoader
        batches = iter(trainer.loader)

        def run() -> None:
            trainer.step(*next(batches))

    with torch.no_grad():
        for tensor in (getattr(trainer, "counter", None),):
            if tensor is not None:
                tensor.zero_()
    synchronize(dev)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            run()
        synchronize(dev)
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(e.time_range.elapsed_us() for e in kernels)
    sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=18)
    return (
        f"## {name}: {steps} steps\n"
        f"wall {wall / steps * 1e6:.1f} us/step; device kernels {busy_us / steps:.1f} us/step "
        f"({len(kernels) / steps:.1f} kernels/step); device busy {busy_us / 1e6 / wall:.0%}\n\n"
        f"{table}\n"
    )


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['name']:<26} ERROR {row['error']}"
    return (
        f"{row['name']:<26} {row['capture'] or '-':<16} warm {_fmt(row['warmup_s'], '6.1f')} s  "
        f"epoch {_fmt(row['best_epoch_s'], '7.3f')} s  "
        f"{_fmt(row['best_samples_per_s'], '10,.0f')}/s  "
        f"p50 {_fmt(row['step_ms_p50'], '7.3f')} ms  "
        f"acc1 {_fmt(row['train_acc_epoch1'], '.4f')}  test {_fmt(row['test_acc'], '.4f')}"
        + (f"  [{row['note']}]" if row.get("note") else "")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/bench_sweep.py", description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", choices=["fast", "throughput", "all"], default="all")
    p.add_argument("--fast-epochs", type=int, default=1)
    p.add_argument("--throughput-epochs", type=int, default=3)
    p.add_argument("--seed-steps", type=int, default=0, help="also time N seed-loop steps")
    p.add_argument("--variants", help="comma-separated variant names (default: all)")
    p.add_argument("--max-steps", type=int, help="cap steps per epoch (smoke tests)")
    p.add_argument("--out", type=Path, help="write the rows as JSON here")
    p.add_argument("--profile", type=Path, help="write profiles here")
    args = p.parse_args(argv)
    global MAX_STEPS  # noqa: PLW0603  (a module-level knob keeps run_variant's signature short)
    MAX_STEPS = args.max_steps
    device = resolve(args.device)[0]
    files = verify(None)
    profiles: list[str] | None = [] if args.profile else None
    wanted = set(args.variants.split(",")) if args.variants else None
    fast = [v for v in FAST if wanted is None or v[0] in wanted]
    throughput = [v for v in THROUGHPUT if wanted is None or v[0] in wanted]
    rows = []
    if args.seed_steps:
        rows.append(
            run_variant(
                "seed", "seed", {"max_steps": args.seed_steps}, None, device, 1, files, profiles
            )
        )
    if args.only in ("fast", "all"):
        rows += [
            run_variant(n, "fast", o, h, device, args.fast_epochs, files, profiles)
            for n, o, h in fast
        ]
    if args.only in ("throughput", "all"):
        rows += [
            run_variant(n, "throughput", o, h, device, args.throughput_epochs, files, profiles)
            for n, o, h in throughput
        ]
    print(
        "\n# summary",
        torch.__version__,
        torch.cuda.get_device_name() if device.startswith("cuda") else device,
    )
    for row in rows:
        print(_line(row))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    if args.profile and profiles is not None:
        args.profile.write_text("\n".join(profiles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
