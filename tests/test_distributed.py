"""setup_tool.distributed: torchrun's command line, free ports, ending leftover workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from setup_tool.distributed import (
    LOOPBACK,
    Launch,
    Rendezvous,
    free_port,
    stop_process_groups,
    torchrun_argv,
)


def test_one_machine_rendezvous_on_loopback_port_zero() -> None:
    argv = torchrun_argv(Launch(Path("/env/bin/python"), Path("/w.py"), 2, ("--x", "1")))
    assert argv[:3] == ("/env/bin/python", "-m", "torch.distributed.run")
    joined = " ".join(argv)
    assert "--nproc-per-node 2" in joined
    assert "--nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0" in joined
    assert "--local-addr 127.0.0.1" in joined
    assert "--max-restarts 0" in joined
    assert argv[-3:] == ("/w.py", "--x", "1")
    # A fresh rendezvous id each run, so two runs on one machine never join each other.
    again = torchrun_argv(Launch(Path("/env/bin/python"), Path("/w.py"), 2))
    assert argv[argv.index("--rdzv-id") + 1] != again[again.index("--rdzv-id") + 1]


def test_several_machines_pass_torchruns_own_options_through() -> None:
    rdzv = Rendezvous("2", "10.0.0.1:29400", node_rank=1, run_id="job7")
    argv = torchrun_argv(Launch(Path("python"), Path("w.py"), 8, rendezvous=rdzv))
    joined = " ".join(argv)
    assert "--nnodes 2 --rdzv-backend c10d --rdzv-endpoint 10.0.0.1:29400 --rdzv-id job7" in joined
    assert "--node-rank 1" in joined
    assert "--local-addr" not in joined


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))


def test_stop_process_groups_ends_a_worker_in_its_own_session(tmp_path: Path) -> None:
    marker = str(tmp_path / "worker-marker.py")
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)  # let the worker start its child
        group = worker.pid
        assert stop_process_groups([worker.pid, other.pid], marker=marker) == (worker.pid,)
        assert worker.wait(timeout=10) == -9
        assert other.poll() is None  # no marker: left alone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.05)
        assert not _group_alive(group)  # the worker's child went with it
    finally:
        other.kill()
        other.wait()
        worker.kill()
        worker.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
