"""The collective check for real: torchrun, 2 gloo ranks on this CPU, real torch.

Faults are injected through SETUP_TOOL_TEST_DISTRIBUTED_FAULT, which only the distributed probe
reads. Each run starts torchrun and two ranks that import torch (seconds each on a small
machine); the time limits below are the doctor's own (a hang must end as a diagnosis within
them), generous for a loaded machine. Rendezvous is on 127.0.0.1 port 0, so parallel runs do
not collide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from setup_tool.doctor.collective import CollectiveEvidence, CollectivePlan, collective_checks
from setup_tool.doctor.collective_run import CollectiveRun, run_collective
from setup_tool.doctor.distributed_probe import FAULT_VARIABLE
from setup_tool.doctor.facts import ProbeFacts, parse_probe
from setup_tool.doctor.result import Check

DATA = Path(__file__).parent / "data"
COLLECTIVE_TIMEOUT_S = 5.0  # how long a rank waits for a silent one
WALL_TIMEOUT_S = 120.0  # the whole torchrun run: startup (two torch imports) included


def cpu_facts() -> ProbeFacts:
    return parse_probe(json.loads((DATA / "probe-linux-x86_64-cu130-no-gpu.json").read_text()))


def gloo(fault: str | None = None, wall: float = WALL_TIMEOUT_S) -> CollectiveRun:
    environ = dict(os.environ)
    environ.pop(FAULT_VARIABLE, None)
    if fault:
        environ[FAULT_VARIABLE] = fault
    return run_collective(
        Path(sys.executable),
        backend="gloo",
        world_size=2,
        timeout_s=COLLECTIVE_TIMEOUT_S,
        wall_timeout_s=wall,
        environ=environ,
    )


def checks_of(run: CollectiveRun) -> dict[str, Check]:
    evidence = CollectiveEvidence(CollectivePlan("gloo", 2, "--distributed"), run=run)
    return {c.id: c for c in collective_checks(evidence, cpu_facts())}


def assert_no_rank_left(run: CollectiveRun) -> None:
    for report in run.ranks:
        if report.pid is not None:
            assert not Path(f"/proc/{report.pid}").exists() or _zombie(report.pid), report


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_the_check_passes_with_exact_sums_and_bandwidth_figures(cli) -> None:  # type: ignore[no-untyped-def]
    """`setup-tool doctor --distributed --expect cpu` on this CPU machine: 2 gloo ranks."""
    result = cli("doctor", "--python", sys.executable, "--distributed", "--expect", "cpu", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    collective = report["collective"]
    assert (collective["ran"], collective["passed"]) == (True, True)
    assert (collective["backend"], collective["world_size"]) == ("gloo", 2)
    assert [r["outcome"] for r in collective["ranks"]] == ["passed", "passed"]
    stages = {c["stage"] for c in collective["checks"]}
    assert stages == {"all_reduce", "broadcast", "all_gather"}
    assert all(c["mismatches"] == 0 for c in collective["checks"])
    assert {c["dtype"] for c in collective["checks"] if c["stage"] == "all_reduce"} == {
        "int32",
        "float32",
    }
    sizes = collective["bandwidth"]
    assert [s["bytes"] for s in sizes] == [64 << 10, 1 << 20, 16 << 20]
    for size in sizes:
        assert size["seconds"] > 0
        assert size["algbw_gb_s"] == pytest.approx(size["bytes"] / size["seconds"] / 1e9)
        assert size["busbw_gb_s"] == pytest.approx(size["algbw_gb_s"])  # 2(n-1)/n = 1 for n=2
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["collective"]["status"] == "pass"
    assert by_id["collective.bandwidth"]["status"] == "pass"
    assert (
        "passed the placement check and the collective check (2 gloo ranks)" in (report["summary"])
    )


def test_a_rank_that_hangs_is_named_by_the_doctor(
    cli,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FAULT_VARIABLE, "1:hang:all_reduce")
    result = cli(
        "doctor",
        "--python",
        sys.executable,
        "--distributed",
        "--expect",
        "cpu",
        "--distributed-timeout",
        f"{COLLECTIVE_TIMEOUT_S:g}",
        "--json",
    )
    report = json.loads(result.stdout)
    assert result.exit_code == 8, result.output  # the CPU works; the collective check failed
    by_id = {c["id"]: c for c in report["checks"]}
    hang = by_id["pitfall.collective-hang"]
    assert hang["status"] == "fail"
    assert hang["detail"].startswith("rank 1 did not answer in the all-reduce; rank 0 waited 5 s")
    assert "Timed out" in hang["detail"]
    ranks = report["collective"]["ranks"]
    assert [(r["outcome"], r["stage"]) for r in ranks] == [
        ("failed", "all_reduce"),
        ("stopped", "all_reduce"),
    ]
    for rank in ranks:
        assert not Path(f"/proc/{rank['pid']}").exists() or _zombie(rank["pid"])


def test_a_rank_that_dies_is_named_with_its_signal() -> None:
    run = gloo("1:die:all_reduce")
    assert not run.passed and not run.timed_out
    checks = checks_of(run)
    died = checks["pitfall.collective-rank-died"]
    killed = "rank 1 was killed by SIGKILL during the all-reduce"
    # A race: rank 0 usually sees the connection break and records its error first; sometimes
    # (1 run in 41 on a loaded 2-core machine) torchrun's SIGTERM reaches it before that, and
    # then it has nothing to say. Either way rank 1's death is the diagnosis.
    (rank0,) = [r for r in run.ranks if r.rank == 0]
    if rank0.outcome(run.timed_out) == "stopped":
        assert died.detail == killed
    else:
        assert died.detail.startswith(f"{killed}; then rank 0 failed in the all-reduce")
    assert "pitfall.collective-hang" not in checks
    assert_no_rank_left(run)


def test_a_rank_that_hangs_in_init_is_reported_by_the_other() -> None:
    run = gloo("1:hang:init")
    checks = checks_of(run)
    hang = checks["pitfall.collective-hang"]
    assert hang.detail.startswith("rank 1 did not answer in init_process_group")
    assert run.rank(0).error_stage == "init"
    assert_no_rank_left(run)


def test_ranks_that_all_hang_are_stopped_at_the_doctors_limit() -> None:
    """No rank raises (both sleep), so only the run's own time limit ends it: torchrun's group
    is killed and the ranks, in their own sessions, are ended by pid."""
    run = gloo("0:hang:broadcast,1:hang:broadcast", wall=30.0)
    assert run.timed_out
    assert [r.outcome(run.timed_out) for r in run.ranks] == ["hung", "hung"]
    hang = checks_of(run)["pitfall.collective-hang"]
    assert hang.detail.startswith("no answer within the doctor's 30 s: rank 0 in ")
    assert hang.detail.endswith("the run was stopped")
    assert_no_rank_left(run)


def test_a_wrong_sum_is_caught_exactly() -> None:
    run = gloo("0:wrong:all_reduce")
    wrong = checks_of(run)["pitfall.collective-wrong-result"]
    # Rank 0 adds 1 to element 500 of its 1,000 int32 values: (500 mod 251)·3 + 1 = 748.
    assert wrong.detail == (
        "the all-reduce gave rank 0 a wrong result (int32 over 1,000 elements: 1 wrong, "
        "element 500 is 748 instead of 747)"
    )
    assert checks_of(run)["collective"].status.value == "fail"


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry.name), cmdline))
    return found


def _wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_killed_doctor_leaves_no_rank_behind(tmp_path: Path) -> None:
    """torchrun runs in its own session and its ranks in theirs, so nothing the doctor's
    process group gets reaches them: each rank watches the doctor's pid and exits with it."""
    # TMPDIR: the killed doctor cannot remove its records directory; it goes with tmp_path.
    environ = dict(
        os.environ, TMPDIR=str(tmp_path), **{FAULT_VARIABLE: "0:hang:broadcast,1:hang:broadcast"}
    )
    doctor = subprocess.Popen(
        [sys.executable, "-m", "setup_tool", "doctor", "--python", sys.executable,
         "--distributed", "--expect", "cpu", "--json"],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def torchrun() -> list[tuple[int, str]]:
            return [c for c in _children(doctor.pid) if "torch.distributed.run" in c[1]]

        assert _wait_for(lambda: len(torchrun()) == 1, 180), "torchrun never started"
        agent = torchrun()[0][0]
        assert _wait_for(lambda: len(_children(agent)) == 2, 180), "the ranks never started"
        ranks = [pid for pid, _ in _children(agent)]
    finally:
        doctor.kill()
        doctor.wait()
    gone = [agent, *ranks]
    assert _wait_for(lambda: not any(_running(p) for p in gone), 60), [
        p for p in gone if _running(p)
    ]


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)
