"""Running the distributed probe under torchrun and reading what every rank recorded.

``run_collective`` starts ``distributed_probe.py`` once per rank through
``setup_tool.distributed`` (torchrun in the target interpreter, rendezvous on 127.0.0.1), with
the whole run bounded by ``wall_timeout_s``: at that point torchrun's process group is killed
and every rank still running is ended by its pid (``stop_process_groups``). Each rank's
JSON-lines file then says how far it got; torchrun's failure summary on stderr adds the exit
code of the ranks it saw fail. Nothing here judges: ``collective.py`` does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from setup_tool.distributed import (
    Launch,
    run_torchrun,
    stop_process_groups,
    worker_environment,
)
from setup_tool.runner import Runner, run_command

DISTRIBUTED_PROBE = Path(__file__).with_name("distributed_probe.py")
STAGES = (
    "import",
    "rendezvous",
    "init",
    "all_reduce",
    "broadcast",
    "all_gather",
    "bandwidth",
    "destroy",
)
STDERR_TAIL_LINES = 12
# The ranks wait this share of the run's time limit for each other at the rendezvous, so a rank
# that never arrives is reported by the others before the whole run is stopped.
STARTUP_SHARE = 0.8
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

Backend = Literal["gloo", "nccl"]
Outcome = Literal["passed", "failed", "died", "stopped", "hung", "missing"]


@dataclass(frozen=True)
class Workload:
    """What each rank runs: the exactness check size and the bandwidth sizes and repeats."""

    elements: int
    sizes: tuple[int, ...]
    warmup: int
    iters: int


# Bandwidth sizes and repeats per backend. NCCL: nccl-tests' own defaults (5 warm-up, 20 timed
# iterations: all_reduce_perf -w 5 -n 20) over 1 MiB to 1 GiB, where large sizes reach the
# links' bandwidth. gloo runs on the CPU over loopback TCP: fewer, smaller sizes keep it to a
# second on a small machine.
WORKLOADS: Mapping[str, Workload] = {
    "nccl": Workload(1 << 24, (MIB, 16 * MIB, 256 * MIB, GIB), warmup=5, iters=20),
    "gloo": Workload(1 << 20, (64 * KIB, MIB, 16 * MIB), warmup=2, iters=5),
}


@dataclass(frozen=True)
class RankReport:
    """What one rank's records say: the stages it finished, where it stopped, and why."""

    rank: int
    start: Mapping[str, Any] = field(default_factory=dict)  # pid, host, /dev/shm size, ...
    finished: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # stage → end
    current: str | None = None  # begun, never ended
    error: str | None = None
    error_stage: str | None = None
    done: bool = False
    exit_code: int | None = None  # as torchrun's failure summary gives it

    @property
    def pid(self) -> int | None:
        pid = self.start.get("pid")
        return pid if isinstance(pid, int) else None

    @property
    def stage(self) -> str | None:
        """The stage it was in when it stopped (None when it finished)."""
        if self.done:
            return None
        if self.error_stage or self.current:
            return self.error_stage or self.current
        return STAGES[len(self.finished)] if len(self.finished) < len(STAGES) else None

    def outcome(self, timed_out: bool) -> Outcome:
        if self.done:
            return "passed"
        if not self.start:
            return "missing"
        if self.error is not None:
            return "failed"
        if self.exit_code == -15:  # SIGTERM: torchrun stopped it after another rank failed
            return "stopped"
        if self.exit_code is None and timed_out:
            return "hung"
        return "died"


@dataclass(frozen=True)
class CollectiveRun:
    backend: Backend
    world_size: int
    workload: Workload
    timeout_s: float  # how long a collective may wait for a rank
    wall_timeout_s: float
    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    seconds: float
    ranks: tuple[RankReport, ...]
    stderr_tail: str = ""
    stopped_pids: tuple[int, ...] = ()  # ranks still running at the end, killed by pid

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and all(r.done for r in self.ranks)

    def rank(self, rank: int) -> RankReport:
        return self.ranks[rank]


def run_collective(
    python: Path,
    *,
    backend: Backend,
    world_size: int,
    timeout_s: float,
    wall_timeout_s: float,
    environ: Mapping[str, str],
    runner: Runner = run_command,
) -> CollectiveRun:
    """Run the distributed probe on ``world_size`` ranks and collect every rank's report."""
    workload = WORKLOADS[backend]
    with tempfile.TemporaryDirectory(prefix="setup-tool-collective-") as records:
        args = (
            "--records", records,
            "--backend", backend,
            "--timeout", f"{timeout_s:g}",
            "--startup-timeout", f"{wall_timeout_s * STARTUP_SHARE:g}",
            "--elements", str(workload.elements),
            "--sizes", ",".join(str(s) for s in workload.sizes),
            "--warmup", str(workload.warmup),
            "--iters", str(workload.iters),
            "--owner-pid", str(os.getpid()),
        )  # fmt: skip
        launch = Launch(python, DISTRIBUTED_PROBE, world_size, args)
        started = time.perf_counter()
        result = run_torchrun(
            launch, timeout=wall_timeout_s, env=worker_environment(environ), runner=runner
        )
        seconds = time.perf_counter() - started
        reports = [read_rank(Path(records) / f"rank-{r}.jsonl", r) for r in range(world_size)]
        # Before the records go: a rank still running (torchrun was killed) is ended here.
        pids = [r.pid for r in reports if r.pid is not None and not r.done]
        stopped = stop_process_groups(pids, marker=str(DISTRIBUTED_PROBE))
    exit_codes = torchrun_exit_codes(result.stderr)
    ranks = tuple(_with_exit(r, exit_codes.get(r.rank)) for r in reports)
    tail = "\n".join(result.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    timed_out = result.error is not None and "timed out" in result.error
    return CollectiveRun(
        backend, world_size, workload, timeout_s, wall_timeout_s, tuple(result.argv),
        result.returncode, timed_out, seconds, ranks, tail, stopped,
    )  # fmt: skip


def read_rank(path: Path, rank: int) -> RankReport:
    """One rank's JSON-lines file (missing: the rank never started)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return RankReport(rank)
    start: dict[str, Any] = {}
    finished: dict[str, Mapping[str, Any]] = {}
    current = error = error_stage = None
    done = False
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut off by a kill
        kind, stage = event.get("event"), event.get("stage")
        if kind == "start":
            start = event
        elif kind == "begin":
            current = stage
        elif kind == "end":
            finished[stage] = event
            current = None
        elif kind == "error":
            error, error_stage, current = event.get("error"), stage, None
        elif kind == "done":
            done = True
    return RankReport(rank, start, finished, current, error, error_stage, done)


# torchrun's failure summary (torch.distributed.elastic's ChildFailedError) lists each failed
# rank as "rank      : 1 (local_rank: 1)" followed by "exitcode  : -9 (pid: 1234)".
_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def torchrun_exit_codes(stderr: str) -> dict[int, int]:
    """Exit code by rank from torchrun's failure summary; {} when there is none."""
    return {int(rank): int(code) for rank, code in _FAILURE.findall(stderr)}


def _with_exit(report: RankReport, exit_code: int | None) -> RankReport:
    if exit_code is None:
        return report
    return RankReport(
        report.rank,
        report.start,
        report.finished,
        report.current,
        report.error,
        report.error_stage,
        report.done,
        exit_code,
    )
