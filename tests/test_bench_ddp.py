"""The data-parallel benchmark on the CPU: torchrun, gloo, 2 processes, for real.

``setup-tool bench --nproc-per-node 2`` runs a 1-process baseline and then 2 ranks under
DistributedDataParallel; the result records the world size, the backend, the topology, samples/s
per rank and in total, the time split and the scaling efficiency, and ``report`` draws the
scaling plot. A rank killed mid-run is one error line that names it, never a hang. Every
rendezvous is torchrun's c10d store on 127.0.0.1 with a port it picks itself (port 0), so runs
never collide and nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from setup_tool.bench_launch import validate_options
from setup_tool.errors import UsageError

pytest.importorskip("torch")

pytestmark = pytest.mark.slow
SHORT = ["--max-steps", "3", "--warmup-steps", "1", "--test-limit", "32"]


def _setup_tool() -> str:
    return str(Path(sys.executable).parent / "setup-tool")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")}


def test_two_gloo_processes_write_a_result_with_world_size_and_scaling(tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = [_setup_tool(), "bench", "--python", sys.executable, "--device", "cpu"]
    argv += ["--nproc-per-node", "2", *SHORT, "--results-dir", str(results), "--json"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=_env(tmp_path), timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    baseline_entry, run_entry = json.loads(proc.stdout)
    assert baseline_entry["world_size"] == 1 and run_entry["world_size"] == 2
    assert run_entry["scaling_efficiency"] > 0

    baseline = json.loads(Path(baseline_entry["path"]).read_text())
    result = json.loads(Path(run_entry["path"]).read_text())
    _check_data_parallel_result(result, baseline)

    report = subprocess.run(
        [_setup_tool(), "report", str(results), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    (scaled,) = [row for row in doc["scaling"] if row["processes"] == 2]
    assert scaled["efficiency"] == pytest.approx(result["distributed"]["scaling"]["efficiency"])
    assert scaled["baseline_samples_per_second"] == baseline["summary"]["samples_per_second"]
    plot = results / "scaling.png"
    assert str(plot) in doc["plots"] and plot.read_bytes().startswith(b"\x89PNG")


def _check_data_parallel_result(result: dict[str, Any], baseline: dict[str, Any]) -> None:
    dist = result["distributed"]
    assert result["complete"] is True
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    assert dist["global_batch_size"] == 16 and dist["per_rank_batch_size"] == 8
    assert result["config"]["loop"] == "fast"  # the default of a data-parallel run
    assert result["loop"]["ddp_options"] == {"gradient_as_bucket_view": True, "static_graph": False}
    assert result["loop"]["capture"] == "none"  # auto on the CPU, as for one process
    ranks = dist["topology"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert len({r["pid"] for r in ranks}) == 2  # two processes, really
    assert len(dist["samples_per_second_per_rank"]) == 2
    (epoch,) = result["epochs"]
    assert epoch["steps"] == 3 and epoch["samples"] == 3 * 16  # both ranks' samples
    assert dist["samples_per_second_total"] == pytest.approx(
        result["summary"]["samples_per_second"]
    )
    split = dist["time_split"]
    assert split["step_seconds"] > 0 and split["compute_seconds"] > 0
    assert split["allreduce_wait_seconds"] == pytest.approx(
        split["step_seconds"] - split["compute_seconds"]
    )
    # Every step all-reduces every gradient: 3,535,446 float32 parameters.
    assert split["allreduce_bytes_per_step"] == 3_535_446 * 4
    assert split["allreduce_busy_seconds_per_step"] > 0  # gloo: timed on the host
    scaling = dist["scaling"]
    assert scaling["baseline_run_id"] == baseline["run_id"]
    one = baseline["summary"]["samples_per_second"]
    assert scaling["efficiency"] == pytest.approx(dist["samples_per_second_total"] / (2 * one))
    assert baseline["distributed"]["world_size"] == 1 and baseline["distributed"]["scaling"] is None
    assert result["summary"]["test_samples"] == 32  # both ranks' shares of the test images


def test_a_killed_rank_is_one_error_line_not_a_hang(tmp_path: Path) -> None:
    marker = str(tmp_path / "results")  # in every worker's command line: finds them, only them
    argv = [sys.executable, "-m", "setup_tool_bench", "--device", "cpu", "--nproc-per-node", "2"]
    argv += ["--no-baseline", "--warmup-steps", "0", "--results-dir", marker]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        start_new_session=True,
    )
    try:
        victim = _wait_for_rank(marker, rank=1, timeout=240)
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=240)  # a hang is the failure tested here
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: rank 1 (pid {victim}) was killed by SIGKILL"]
    assert not _workers(marker)  # torchrun stopped rank 0 too


def _workers(marker: str) -> dict[int, int]:
    """{pid: rank} of the live workers whose command line holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if b"--ddp-worker" in cmdline and marker.encode() in cmdline and state != "Z":
            ranks = [v for v in environ if v.startswith(b"RANK=")]
            if ranks:
                found[int(entry.name)] = int(ranks[0].split(b"=", 1)[1])
    return found


def _wait_for_rank(marker: str, *, rank: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, found in _workers(marker).items():
            if found == rank:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no worker of rank {rank} appeared in {timeout} s")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nproc_per_node": 3}, "--batch-size 16 does not split evenly across 3 processes"),
        ({"nproc_per_node": 2, "loop": "seed"}, "runs the fast or throughput loop"),
        ({"nproc_per_node": 2, "capture": "graph"}, "does not apply to a data-parallel run"),
        ({"nproc_per_node": 2, "device": "mps"}, "on --device auto, cpu or cuda"),
        ({"nproc_per_node": 0}, "--nproc-per-node must be a positive integer"),
        ({"nproc_per_node": 2, "nnodes": 2}, "--nnodes 2 needs --rdzv-endpoint"),
        (
            {"nproc_per_node": 2, "nnodes": 2, "rdzv_endpoint": "h:1", "node_rank": 2},
            "--node-rank 2 is not between 0 and 1",
        ),
        ({"nnodes": 2}, "--nnodes needs --nproc-per-node"),
        ({"no_baseline": True}, "--no-baseline needs --nproc-per-node"),
    ],
)
def test_a_data_parallel_run_that_cannot_run_is_refused_before_it_starts(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        validate_options(values)


def test_the_worker_outside_torchrun_is_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in _env(tmp_path).items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [sys.executable, "-m", "setup_tool_bench", "--ddp-worker", "--nproc-per-node", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --ddp-worker runs under torchrun")
