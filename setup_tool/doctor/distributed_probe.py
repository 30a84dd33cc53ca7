"""The doctor's distributed probe: one copy per rank, started by torchrun in the target Python.

It needs only the standard library and torch (like ``probe.py``; Python 3.8+, no setup_tool
imports). Each rank runs the same stages and writes what happens, as it happens, to its own
JSON-lines file (``--records DIR/rank-<RANK>.jsonl``, one unbuffered ``os.write`` per line), so
a rank that hangs or is killed still leaves the stage it was in. setup-tool reads the files
after torchrun ends and judges them (``setup_tool.doctor.collective``); nothing is judged here.

Stages, in order, each announced by a ``begin`` line and closed by ``end`` or ``error``:

- ``import``: ``import torch``;
- ``rendezvous``: every rank checks in on torchrun's TCP store (``torch.distributed.rendezvous``
  with ``env://``), waiting up to ``--startup-timeout`` for the slowest to import torch;
- ``init``: ``init_process_group`` (gloo, or NCCL with the communicator created eagerly), with
  ``--timeout`` as the process group's timeout: a collective that waits longer for a rank fails
  (gloo raises; NCCL's watchdog aborts the process);
- ``all_reduce``: integer and float32 sums of values whose sum is exactly representable,
  compared element by element with the expected sum;
- ``broadcast`` and ``all_gather``: a known pattern from rank 0, one tensor from every rank;
- ``bandwidth``: all-reduce timed for each ``--sizes`` (nccl-tests' method: warm-up, then the
  mean over ``--iters``, the slowest rank's time; algbw = bytes / time).

The environment variable ``SETUP_TOOL_TEST_DISTRIBUTED_FAULT`` (read by nothing else) injects
faults for the tests: ``<rank>:<hang|die|wrong>:<stage>``, comma-separated. ``hang`` sleeps at
the start of the stage (after its ``begin`` line), ``die`` SIGKILLs the rank there, ``wrong``
adds 1 to one element of the rank's all-reduce contribution.

A watchdog thread ends the rank when its parent (torchrun's agent) or ``--owner-pid`` (the
doctor) is gone: torchrun starts workers in their own sessions and runs in its own, so a killed
or interrupted doctor would otherwise leave ranks behind, stuck in a collective.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

FAULT_VARIABLE = "SETUP_TOOL_TEST_DISTRIBUTED_FAULT"
ERROR_TEXT_LIMIT = 600
SHM = "/dev/shm"


class Records:
    """This rank's JSON-lines file: one ``os.write`` per event, so a kill loses nothing written."""

    def __init__(self, directory: str, rank: int) -> None:
        path = Path(directory) / f"rank-{rank}.jsonl"
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.started = time.perf_counter()

    def write(self, event: str, **fields: Any) -> None:
        fields.update(event=event, t=round(time.perf_counter() - self.started, 4))
        os.write(self.fd, (json.dumps(fields) + "\n").encode())


class Faults:
    """The faults injected for this rank, from ``SETUP_TOOL_TEST_DISTRIBUTED_FAULT``."""

    def __init__(self, rank: int, text: str) -> None:
        self.actions: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            who, action, stage = item.split(":")
            if int(who) == rank:
                self.actions[stage] = action

    def at(self, stage: str) -> None:
        action = self.actions.get(stage)
        if action == "hang":
            while True:
                time.sleep(3600)
        if action == "die":
            os.kill(os.getpid(), signal.SIGKILL)

    def wrong(self, stage: str) -> bool:
        return self.actions.get(stage) == "wrong"


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    records = Records(args.records, rank)
    _watch_parent(args.owner_pid)
    records.write("start", **_start_facts(rank, local_rank, world))
    faults = Faults(rank, os.environ.get(FAULT_VARIABLE, ""))
    state: dict[str, Any] = {"rank": rank, "world": world, "local_rank": local_rank}
    for stage, action in STAGES:
        records.write("begin", stage=stage)
        started = time.perf_counter()
        try:
            faults.at(stage)
            result = action(args, state, faults)
        except BaseException as exc:
            seconds = round(time.perf_counter() - started, 4)
            records.write("error", stage=stage, error=_error_text(exc), seconds=seconds)
            return 1
        records.write("end", stage=stage, seconds=round(time.perf_counter() - started, 4), **result)
    records.write("done")
    return 0


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True, help="directory for rank-<RANK>.jsonl")
    parser.add_argument("--backend", choices=("gloo", "nccl"), required=True)
    parser.add_argument("--timeout", type=float, required=True, help="collective timeout, s")
    parser.add_argument("--startup-timeout", type=float, required=True)
    parser.add_argument("--elements", type=int, default=1 << 20, help="all-reduce check size")
    parser.add_argument("--sizes", default="1048576", help="bandwidth sizes in bytes, a,b,c")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--owner-pid", type=int, help="exit when this process is gone")
    return parser.parse_args(argv)


def _watch_parent(owner: int | None) -> None:
    """End this rank when torchrun (its parent) or the doctor that started torchrun is gone:
    nobody would read what it does, and a rank stuck in a collective would stay forever."""
    parent = os.getppid()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while os.getppid() == parent and (owner is None or alive(owner)):
            time.sleep(0.5)
        os._exit(75)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _start_facts(rank: int, local_rank: int, world: int) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "rank": rank,
        "local_rank": local_rank,
        "world_size": world,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "python": sys.executable,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "shm_bytes": None,
        "shm_free_bytes": None,
    }
    try:
        stats = os.statvfs(SHM)
        facts["shm_bytes"] = stats.f_frsize * stats.f_blocks
        facts["shm_free_bytes"] = stats.f_frsize * stats.f_bavail
    except (OSError, AttributeError):
        pass  # no /dev/shm (macOS): NCCL is Linux-only anyway
    return facts


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + " ..."


# --- stages ---------------------------------------------------------------------------------


def _import(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    state["torch"], state["dist"] = torch, dist
    if args.backend == "nccl":
        torch.cuda.set_device(state["local_rank"])
        state["device"] = torch.device("cuda", state["local_rank"])
    else:
        state["device"] = torch.device("cpu")
    return {"torch": str(torch.__version__), "device": str(state["device"])}


def _rendezvous(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    dist = state["dist"]
    timeout = datetime.timedelta(seconds=args.startup_timeout)
    store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
    state["store"] = store
    arrived = store.add("setup-tool/arrived", 1)
    if arrived == state["world"]:
        store.set("setup-tool/all-arrived", "1")
    store.wait(["setup-tool/all-arrived"], timeout)
    return {"arrival": int(arrived)}


def _init(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    torch, dist = state["torch"], state["dist"]
    options: dict[str, Any] = {
        "backend": args.backend,
        "store": dist.PrefixStore("setup-tool/pg", state["store"]),
        "rank": state["rank"],
        "world_size": state["world"],
        "timeout": datetime.timedelta(seconds=args.timeout),
    }
    if args.backend == "nccl":
        options["device_id"] = state["device"]  # create the communicator now, in this stage
    try:
        dist.init_process_group(**options)
    except TypeError:  # a torch older than device_id (2.3)
        options.pop("device_id", None)
        dist.init_process_group(**options)
    result: dict[str, Any] = {"backend": dist.get_backend()}
    if args.backend == "nccl":
        version = torch.cuda.nccl.version()
        result["nccl_version"] = (
            ".".join(map(str, version)) if isinstance(version, tuple) else version
        )
    return result


def _all_reduce(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """Sums checked exactly: element i of rank r is (i mod 251)·(r+1), so the sum is
    (i mod 251)·n(n+1)/2, an integer below 2^24 for n ≤ 64 ranks, exact in float32 too."""
    torch, dist = state["torch"], state["dist"]
    rank, world = state["rank"], state["world"]
    checks = []
    for dtype in (torch.int32, torch.float32):
        for elements in sorted({1000, args.elements}):
            base = torch.arange(elements, dtype=torch.int64) % 251
            tensor = (base * (rank + 1)).to(dtype).to(state["device"])
            if faults.wrong("all_reduce"):
                tensor[elements // 2] += 1
            dist.all_reduce(tensor)
            expected = (base * (world * (world + 1) // 2)).to(dtype)
            checks.append(_compare(tensor.cpu(), expected, str(dtype).replace("torch.", "")))
    return {"checks": checks}


def _compare(got: Any, expected: Any, dtype: str) -> dict[str, Any]:
    wrong = got != expected
    count = int(wrong.sum())
    entry: dict[str, Any] = {"dtype": dtype, "elements": int(got.numel()), "mismatches": count}
    if count:
        index = int(wrong.nonzero()[0][0])
        entry.update(first_index=index, got=got[index].item(), expected=expected[index].item())
    return entry


def _broadcast(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    torch, dist = state["torch"], state["dist"]
    expected = torch.arange(4096, dtype=torch.int64) * 3 + 7
    tensor = expected.clone() if state["rank"] == 0 else torch.zeros_like(expected)
    tensor = tensor.to(state["device"])
    dist.broadcast(tensor, src=0)
    return {"checks": [_compare(tensor.cpu(), expected, "int64")]}


def _all_gather(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    torch, dist = state["torch"], state["dist"]
    world, device = state["world"], state["device"]

    def contribution(rank: int) -> Any:
        return torch.full((4096,), rank * 1000 + 1, dtype=torch.int64)

    gathered = [torch.zeros(4096, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(gathered, contribution(state["rank"]).to(device))
    checks = [_compare(gathered[r].cpu(), contribution(r), "int64") for r in range(world)]
    return {"checks": checks}


def _bandwidth(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """All-reduce of float32 zeros per size: the mean of ``--iters`` after ``--warmup``, taken as
    the slowest rank's (an all-reduce with MAX), as nccl-tests reports it."""
    torch, dist, device = state["torch"], state["dist"], state["device"]
    sizes = [int(size) for size in args.sizes.split(",") if size]
    measured = []
    for size in sizes:
        buffer = torch.zeros(size // 4, dtype=torch.float32, device=device)
        for _ in range(args.warmup):
            dist.all_reduce(buffer)
        _synchronize(torch, device)
        dist.all_reduce(torch.zeros(1, device=device))  # start the timed loop together
        _synchronize(torch, device)
        started = time.perf_counter()
        for _ in range(args.iters):
            dist.all_reduce(buffer)
        _synchronize(torch, device)
        seconds = torch.tensor([(time.perf_counter() - started) / args.iters], device=device)
        slowest = seconds.double()
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        nonzero = int((buffer != 0).sum())
        measured.append(
            {
                "bytes": size,
                "seconds": float(slowest.item()),
                "iters": args.iters,
                "wrong_elements": nonzero,
            }
        )
    return {"sizes": measured}


def _synchronize(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _destroy(args: argparse.Namespace, state: dict[str, Any], faults: Faults) -> dict[str, Any]:
    state["dist"].destroy_process_group()
    return {}


STAGES = (
    ("import", _import),
    ("rendezvous", _rendezvous),
    ("init", _init),
    ("all_reduce", _all_reduce),
    ("broadcast", _broadcast),
    ("all_gather", _all_gather),
    ("bandwidth", _bandwidth),
    ("destroy", _destroy),
)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # skip torch's teardown (seconds on a small CPU); the records are written
