"""Starting torch.distributed work in a target interpreter: torchrun, bounded, on loopback.

setup-tool never imports torch, so multi-process work (the doctor's collective check, the
data-parallel benchmark) runs as ``<python> -m torch.distributed.run`` (torchrun, PyTorch's own
launcher) in the target interpreter, through the one subprocess boundary (``runner.py``).
Why torchrun and not ``torch.multiprocessing.spawn``: torchrun is the launcher users run
themselves (``--nnodes``, ``--rdzv-endpoint``, ``--node-rank`` pass straight through to it for
several machines), it sets ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` /
``MASTER_PORT`` for every worker, and when one worker fails it stops the others; ``spawn`` would
need a launcher script of our own around it.

One machine (the default): c10d rendezvous on ``127.0.0.1:0``. Port 0 lets the agent's TCP
store bind a free port itself and hand it to the workers (torchrun's ``--standalone`` does the
same on ``localhost``, which may resolve to another address), so parallel runs never collide and
there is no window between choosing a port and binding it. ``--local-addr 127.0.0.1`` keeps the
workers' ``MASTER_ADDR`` on loopback too (it defaults to the host's FQDN, which in containers
often resolves to an address the host cannot reach).

torchrun starts every worker in its own session (torch.distributed.elastic's
``SubprocessHandler``), so killing torchrun's process group at a timeout does not reach them:
``stop_process_groups`` ends each worker's group by the pid it reported.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from setup_tool.runner import CommandResult, Runner, run_command

LOOPBACK = "127.0.0.1"
COLLECTIVE_PREFIXES = ("NCCL_", "TORCH_NCCL_", "GLOO_", "TORCH_DISTRIBUTED_")
# How often torchrun checks on its workers: a dead worker is noticed within this. Set
# explicitly, because torchrun's default has changed between releases.
MONITOR_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Rendezvous:
    """torchrun's rendezvous options for several machines, passed through as given."""

    nnodes: str  # "2", or "1:4" for an elastic range
    endpoint: str  # host:port of the rendezvous on the first machine
    node_rank: int | None = None
    run_id: str | None = None  # every machine must give the same one; default: "setup-tool"


@dataclass(frozen=True)
class Launch:
    """One torchrun run: ``nproc_per_node`` copies of ``script`` with ``script_args``."""

    python: Path
    script: Path
    nproc_per_node: int
    script_args: tuple[str, ...] = ()
    rendezvous: Rendezvous | None = None  # None: this machine only, on 127.0.0.1


def torchrun_argv(launch: Launch) -> tuple[str, ...]:
    """The command line: ``<python> -m torch.distributed.run <options> <script> <args>``."""
    argv = [str(launch.python), "-m", "torch.distributed.run"]
    argv += ["--nproc-per-node", str(launch.nproc_per_node)]
    argv += ["--max-restarts", "0", "--monitor-interval", str(MONITOR_INTERVAL_S)]
    rdzv = launch.rendezvous
    if rdzv is None:
        argv += ["--nnodes", "1", "--rdzv-backend", "c10d"]
        argv += ["--rdzv-endpoint", f"{LOOPBACK}:0", "--rdzv-id", uuid.uuid4().hex]
        argv += ["--local-addr", LOOPBACK]
    else:
        argv += ["--nnodes", rdzv.nnodes, "--rdzv-backend", "c10d"]
        argv += ["--rdzv-endpoint", rdzv.endpoint, "--rdzv-id", rdzv.run_id or "setup-tool"]
        if rdzv.node_rank is not None:
            argv += ["--node-rank", str(rdzv.node_rank)]
    return (*argv, str(launch.script), *launch.script_args)


def worker_environment(
    base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment torchrun and its workers get: ``base`` plus ``extra``, unbuffered."""
    env = dict(base)
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"  # a worker killed mid-run still leaves its last lines
    return env


def run_torchrun(
    launch: Launch,
    *,
    timeout: float,
    env: Mapping[str, str],
    runner: Runner = run_command,
    cwd: Path | None = None,
) -> CommandResult:
    """Run torchrun to completion or ``timeout`` (then its process group is killed).

    Workers outlive a killed torchrun (their own sessions): callers that record the workers'
    pids end them with ``stop_process_groups``.
    """
    return runner(torchrun_argv(launch), timeout=timeout, env=env, cwd=cwd)


def stop_process_groups(pids: Iterable[int], *, marker: str) -> tuple[int, ...]:
    """SIGKILL the process group of each pid still running a command line containing ``marker``.

    ``marker`` (the worker script's path) guards against a pid reused by another program.
    Returns the pids that were stopped.
    """
    stopped = []
    for pid in sorted(set(pids)):
        if not _runs(pid, marker):
            continue
        try:
            os.killpg(pid, signal.SIGKILL)  # a worker leads its own session: pgid == pid
        except ProcessLookupError:
            continue
        except PermissionError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        stopped.append(pid)
    return tuple(stopped)


def _runs(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # gone (or no /proc: macOS, where workers watch their parent instead)
    return marker.encode() in cmdline


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` now, for launchers that need a fixed one (``MASTER_PORT``).

    Another process may take it before it is bound again; prefer port 0 where the launcher
    binds it itself (``torchrun_argv`` does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def nccl_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The NCCL, PyTorch-NCCL and gloo settings in ``environ`` (what changes a collective)."""
    return {k: v for k, v in environ.items() if k.startswith(COLLECTIVE_PREFIXES)}
