"""``--nproc-per-node N``: the data-parallel run, started through torchrun.

Why torchrun (``torch.distributed.run``) and not ``torch.multiprocessing.spawn``: torchrun is
PyTorch's own launcher, the one users run themselves; it sets every worker's ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and rendezvous address, stops the others when one fails, and
its rendezvous is what spans several machines (``--nnodes``, ``--rdzv-endpoint``,
``--node-rank``, ``--rdzv-id``, ``--rdzv-backend`` pass straight through). ``spawn`` stops at
one machine and would need a rendezvous of our own.

torchrun runs in this process, inside the target environment (``parse_args`` and ``run``, its
own entry point, what ``python -m torch.distributed.run`` calls), twice:

1. one process (``--nproc-per-node 1``, a rendezvous of its own): the baseline the scaling
   efficiency is measured against, in the same launch, with the same threads per process;
2. N processes per machine, DistributedDataParallel, the global batch split among them.

Each worker is ``python -m <this package> --ddp-worker ...`` (``bench.ddp``). Calling torchrun
in-process lets a failure become one ``error:`` line: the first failing rank's own error
(workers write theirs to a directory this launcher reads), instead of torchrun's
``ChildFailedError`` traceback. One machine rendezvouses on ``127.0.0.1`` with a port the
store picks itself (port 0: no collision between runs, nothing reachable from outside).
torchrun's own log lines are silenced (``LOGLEVEL`` unset: set it to see them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .errors import EXIT_ERROR, EXIT_INTERRUPTED, BenchError, BenchUsageError
from .options import to_argv

PACKAGE = __name__.rpartition(".")[0]  # "setup_tool_bench" installed, "bench" in a checkout
LOOPBACK = "127.0.0.1"
MONITOR_INTERVAL_S = 0.2  # how soon torchrun notices a dead worker (its default has varied)
# torchrun's options, not the workers'.
RENDEZVOUS = ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_backend", "rdzv_id")


def torchrun_options(values: dict[str, Any], *, nproc: int, local: bool) -> list[str]:
    """torchrun's command-line options (no torch needed): this machine's processes, and the
    rendezvous given, or a private one on loopback."""
    options = ["--nproc-per-node", str(nproc)]
    options += ["--max-restarts", "0", "--monitor-interval", str(MONITOR_INTERVAL_S)]
    if local or not values.get("rdzv_endpoint"):
        options += ["--nnodes", "1", "--rdzv-backend", "c10d"]
        options += ["--rdzv-endpoint", f"{LOOPBACK}:0", "--rdzv-id", uuid.uuid4().hex]
        return [*options, "--local-addr", LOOPBACK]
    options += ["--nnodes", str(values.get("nnodes") or 1)]
    options += ["--rdzv-backend", str(values.get("rdzv_backend") or "c10d")]
    options += ["--rdzv-endpoint", str(values["rdzv_endpoint"])]
    options += ["--rdzv-id", str(values.get("rdzv_id") or "setup-tool-bench")]
    if values.get("node_rank") is not None:
        options += ["--node-rank", str(values["node_rank"])]
    return options


def worker_argv(
    values: dict[str, Any], device_type: str, workdir: Path, baseline: Path | None
) -> list[str]:
    """``-m <package> ...``: the worker command torchrun starts on each rank."""
    given = {k: v for k, v in values.items() if k not in RENDEZVOUS and k != "json"}
    given["device"] = device_type
    argv = ["-m", PACKAGE, *to_argv(given), "--ddp-worker"]
    argv += ["--report-to", str(workdir / "report.json"), "--error-dir", str(workdir)]
    if baseline is not None:
        argv += ["--baseline-result", str(baseline)]
    if values.get("nnodes"):
        argv += ["--nnodes", str(values["nnodes"])]
        if values.get("rdzv_endpoint"):  # what the worker's own checks ask of several machines
            argv += ["--rdzv-endpoint", str(values["rdzv_endpoint"])]
    return argv


def launch_main(values: dict[str, Any]) -> int:
    """The 1-process baseline, then the N-process run; a summary on stdout."""
    from .summary import print_summary

    try:
        runs = _launch(values)
    except BenchError as exc:
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: the finished epochs of the run in progress are saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    results = [json.loads(path.read_text()) for path in runs]
    print_summary(results, runs, bool(values.get("json")))
    if not runs:
        print(
            "this machine's processes finished; rank 0, on another machine, wrote the result",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED if any(not r["complete"] for r in results) else 0


def _launch(values: dict[str, Any]) -> list[Path]:
    from .config import configs_for
    from .torchcheck import require_torch

    (config,) = configs_for(values, ["cpu"])  # refuse what cannot run before anything starts
    require_torch()
    from .data import verify
    from .results import ensure_writable

    nproc = int(values["nproc_per_node"])
    device_type = resolve_device_type(str(values.get("device") or "auto"), nproc)
    verify(config.data_dir)
    ensure_writable(config.results_dir)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(nproc)))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        baseline = None
        if config.world_size > 1 and not values.get("no_baseline"):
            print("==> 1 process first: the baseline of the scaling efficiency", file=sys.stderr)
            single = {**values, "nproc_per_node": 1, "nnodes": None, "no_baseline": None}
            baseline = _torchrun(single, device_type, Path(tmp) / "baseline", nproc=1, local=True)
            runs += [baseline] if baseline else []
        print(f"==> {config.world_size} processes, DistributedDataParallel", file=sys.stderr)
        main = _torchrun(values, device_type, Path(tmp) / "main", nproc=nproc, baseline=baseline)
        runs += [main] if main else []
    return runs


def resolve_device_type(requested: str, nproc: int) -> str:
    """cuda or cpu for every rank; refuse more GPU processes than GPUs before any CUDA work."""
    from .devices import resolve

    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto" and not (torch.cuda.is_available() and torch.cuda.device_count()):
        return "cpu"
    resolve("cuda")  # a clear error when CUDA is not usable here
    count = torch.cuda.device_count()
    if nproc > count:
        raise BenchUsageError(
            f"--nproc-per-node {nproc} needs {nproc} GPUs; this machine has {count}",
            f"use --nproc-per-node {count} (one process per GPU), or --device cpu for CPU "
            "processes (gloo)",
        )
    return "cuda"


def threads_per_process(nproc: int) -> int:
    """The machine's cores shared out: the 1-process baseline gets one process's share too,
    so the scaling efficiency compares like with like."""
    return max(1, (os.cpu_count() or 1) // nproc)


def _torchrun(
    values: dict[str, Any],
    device_type: str,
    workdir: Path,
    *,
    nproc: int,
    local: bool = False,
    baseline: Path | None = None,
) -> Path | None:
    """One torchrun run; the result rank 0 wrote (None: rank 0 ran on another machine)."""
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    torchrun: Any = torch.distributed.run  # (torch leaves parse_args and run unannotated)
    _quiet_torchrun()
    workdir.mkdir()
    options = torchrun_options(values, nproc=nproc, local=local)
    try:
        torchrun.run(
            torchrun.parse_args([*options, *worker_argv(values, device_type, workdir, baseline)])
        )
    except ChildFailedError as exc:
        raise worker_failure(exc, workdir) from None
    except RendezvousError as exc:
        raise BenchError(
            f"torchrun's rendezvous failed ({type(exc).__name__}: {exc})",
            "every machine must run the same command with the same --rdzv-endpoint and "
            "--rdzv-id, and reach the endpoint's port",
        ) from None
    except SignalException:
        raise KeyboardInterrupt from None
    report = workdir / "report.json"
    return Path(json.loads(report.read_text())["result"]) if report.is_file() else None


def _quiet_torchrun() -> None:
    """torchrun logs a worker's failure and its own warnings; this launcher reports them in
    one line instead. LOGLEVEL (torch.distributed.elastic's own variable) brings them back."""
    if "LOGLEVEL" in os.environ:
        return
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def worker_failure(exc: Any, workdir: Path) -> BaseException:
    """The first failing rank's own error, else what torchrun saw of it (exit code, signal).
    Ranks that failed after it (a peer gone mid-all-reduce) are consequences, not causes."""
    rank, failure = exc.get_first_failure()  # the root cause: the others failed after it
    record = workdir / f"rank{rank}.json"
    if record.is_file():
        data = json.loads(record.read_text())
        error = BenchError(f"rank {rank}: {data['message']}", data.get("hint"))
        error.exit_code = int(data.get("exit_code") or EXIT_ERROR)
        return error
    if failure.exitcode == EXIT_INTERRUPTED:
        return KeyboardInterrupt()
    if failure.exitcode < 0:
        what = f"was killed by {failure.signal_name()}"
    else:
        what = f"exited with {failure.exitcode}"
    return BenchError(
        f"rank {rank} (pid {failure.pid}) {what}",
        "the rank's own output above says why; a killed rank often ran out of memory",
    )


def _print_error(message: str, hint: str | None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
