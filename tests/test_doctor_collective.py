"""Judging the collective check without running it: records, plans, pitfalls, bandwidth.

The runs here are ``CollectiveRun`` values written out by hand from what real runs record
(tests/test_doctor_collective_run.py runs them for real on the CPU); the multi-GPU cases stand
for machines this project has no access to, with topologies from tests/data/.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from setup_tool.doctor import bandwidth
from setup_tool.doctor.collective import (
    CollectiveEvidence,
    CollectiveOptions,
    CollectivePlan,
    collective_checks,
    collective_json,
    plan_collective,
)
from setup_tool.doctor.collective_pitfalls import failure_of, short_error
from setup_tool.doctor.collective_run import (
    WORKLOADS,
    CollectiveRun,
    RankReport,
    read_rank,
    torchrun_exit_codes,
)
from setup_tool.doctor.facts import CudaDevice, ProbeFacts, parse_probe
from setup_tool.doctor.result import Check
from setup_tool.doctor.topology import PcieLink, Topology, parse_pcie_links, parse_topology
from setup_tool.variants import Variant

DATA = Path(__file__).parent / "data"
START = {"pid": 4242, "shm_bytes": 64 << 30}
PASSED_CHECKS = {
    "all_reduce": {"checks": [{"dtype": "int32", "elements": 1000, "mismatches": 0}]},
    "broadcast": {"checks": [{"dtype": "int64", "elements": 4096, "mismatches": 0}]},
    "all_gather": {"checks": [{"dtype": "int64", "elements": 4096, "mismatches": 0}]},
}


def cpu_facts(**environment: str) -> ProbeFacts:
    facts = parse_probe(json.loads((DATA / "probe-linux-x86_64-cu130-no-gpu.json").read_text()))
    return replace(facts, environment={**facts.environment, **environment})


def gpu_facts(count: int, capability: str = "9.0", **environment: str) -> ProbeFacts:
    """The H200 recording, seeing ``count`` GPUs (and peer access between all of them)."""
    facts = parse_probe(json.loads((DATA / "probe-linux-h200.json").read_text()))
    assert facts.torch is not None
    torch = replace(
        facts.torch,
        cuda_device_count=count,
        # The probe records peer access from two GPUs on.
        peer_access=tuple(tuple(True for _ in range(count)) for _ in range(count))
        if count > 1
        else (),
    )
    devices = tuple(CudaDevice(i, "NVIDIA H200", capability, 143771) for i in range(count))
    return replace(
        facts, torch=torch, devices=devices, environment={**facts.environment, **environment}
    )


def rank(number: int, **fields: Any) -> RankReport:
    return RankReport(number, fields.pop("start", START), **fields)


def done(number: int, finished: dict[str, Any] | None = None) -> RankReport:
    return rank(number, finished=finished or dict(PASSED_CHECKS), done=True)


def a_run(
    *ranks: RankReport,
    backend: str = "gloo",
    returncode: int | None = 1,
    timed_out: bool = False,
) -> CollectiveRun:
    return CollectiveRun(
        backend,  # type: ignore[arg-type]
        len(ranks),
        WORKLOADS[backend],
        30.0,
        120.0,
        ("python", "-m", "torch.distributed.run"),
        returncode,
        timed_out,
        12.0,
        ranks,
    )


def judged(
    run: CollectiveRun, facts: ProbeFacts, topology: Topology | None = None
) -> dict[str, Check]:
    gpus = tuple(range(run.world_size)) if run.backend == "nccl" else ()
    plan = CollectivePlan(run.backend, run.world_size, "--distributed", gpus)
    evidence = CollectiveEvidence(plan, run=run, topology=topology)
    return {c.id: c for c in collective_checks(evidence, facts)}


# --- what went wrong first ---------------------------------------------------------------------


def test_a_rank_killed_explains_the_others_errors() -> None:
    run = a_run(
        rank(0, error="RuntimeError: Connection reset by peer", error_stage="all_reduce"),
        rank(1, current="all_reduce", exit_code=-9),
    )
    failure = failure_of(run)
    assert failure is not None and failure.kind == "died"
    assert [r.rank for r in failure.ranks] == [1]


def test_nccl_watchdog_abort_is_the_waiting_rank_not_the_culprit() -> None:
    """NCCL's watchdog aborts (SIGABRT) the rank that waited; torchrun then stops the silent
    one with SIGTERM: the silent one is named."""
    run = a_run(
        rank(0, current="all_reduce", exit_code=-6),
        rank(1, current="all_reduce", exit_code=-15),
        backend="nccl",
    )
    failure = failure_of(run)
    assert failure is not None and (failure.kind, [r.rank for r in failure.ranks]) == ("hang", [1])
    hang = judged(run, gpu_facts(2))["pitfall.collective-hang"]
    assert hang.detail == (
        "rank 1 did not answer in the all-reduce; rank 0 was aborted (SIGABRT) in the "
        "all-reduce, as NCCL's watchdog does after 30 s"
    )
    assert "NCCL_DEBUG=INFO" in (hang.fix or "")


def test_a_rank_that_died_of_nccl_while_others_waited() -> None:
    """A peer SIGKILLed under NCCL: the others stay in the collective until torchrun stops them."""
    run = a_run(
        rank(0, current="all_reduce", exit_code=-15),
        rank(1, current="all_reduce", exit_code=-9),
        backend="nccl",
    )
    checks = judged(run, gpu_facts(2))
    assert checks["pitfall.collective-rank-died"].detail == (
        "rank 1 was killed by SIGKILL during the all-reduce"
    )
    assert "pitfall.collective-hang" not in checks


def test_the_run_stopped_at_the_limit_names_every_silent_rank() -> None:
    run = a_run(
        rank(0, current="broadcast"), rank(1, finished={"import": {}}), timed_out=True,
        returncode=None,
    )  # fmt: skip
    failure = failure_of(run)
    assert failure is not None and failure.kind == "hang"
    detail = judged(run, cpu_facts())["pitfall.collective-hang"].detail
    assert detail == (
        "no answer within the doctor's 120 s: rank 0 in the broadcast, rank 1 in the "
        "rendezvous (every rank checking in); the run was stopped"
    )


def test_no_rank_started_is_torchrun_failing() -> None:
    run = replace(
        a_run(RankReport(0, {}), RankReport(1, {})),
        stderr_tail="/env/bin/python: No module named torch.distributed.run",
    )
    checks = judged(run, cpu_facts())
    assert checks["pitfall.collective-torchrun"].detail == (
        "torchrun started no rank (exited with 1): /env/bin/python: No module named "
        "torch.distributed.run"
    )


def test_an_error_without_a_silent_rank() -> None:
    error = "DistBackendError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO)"
    run = a_run(
        rank(0, error=error, error_stage="init"), rank(1, error=error, error_stage="init"),
        backend="nccl",
    )  # fmt: skip
    found = judged(run, gpu_facts(2))["pitfall.collective-error"]
    assert found.detail.startswith("rank 0 failed in init_process_group (and 1 more ranks)")


def test_a_passing_run_has_no_failure() -> None:
    run = a_run(done(0), done(1), returncode=0)
    assert failure_of(run) is None
    checks = judged(run, cpu_facts())
    assert checks["collective"].status.value == "pass"
    assert not [c for c in checks if c.startswith("pitfall.")]


def test_short_error_drops_glooss_source_location_and_the_advice() -> None:
    assert (
        short_error(
            "RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] "
            "Read error [127.0.0.1]:17542: Connection reset by peer. This is typically caused by a "
            "remote worker hanging."
        )
        == "RuntimeError: Read error [127.0.0.1]:17542: Connection reset by peer"
    )


# --- what the ranks recorded -------------------------------------------------------------------


def test_a_record_cut_off_by_a_kill_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "rank-1.jsonl"
    path.write_text(
        '{"event": "start", "rank": 1, "pid": 77, "t": 0}\n'
        '{"event": "begin", "stage": "import", "t": 0}\n'
        '{"event": "end", "stage": "import", "seconds": 2.1, "t": 2.1}\n'
        '{"event": "begin", "stage": "rendezvous", "t": 2.1}\n'
        '{"event": "end", "stage": "rend'
    )
    report = read_rank(path, 1)
    assert (report.pid, report.current, report.stage, report.done) == (
        77,
        "rendezvous",
        "rendezvous",
        False,
    )
    assert read_rank(tmp_path / "rank-9.jsonl", 9).outcome(timed_out=False) == "missing"


def test_torchrun_failure_summary() -> None:
    text = (DATA / "torchrun-failure-summary-rank-killed.txt").read_text()
    assert torchrun_exit_codes(text) == {0: 1, 1: -9}
    assert torchrun_exit_codes("") == {}


# --- when it runs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "expect", "gpus", "planned"),
    [
        (None, Variant.cuda, 1, None),  # one GPU: only with --distributed
        (None, Variant.cuda, 2, ("nccl", 2, "2 GPUs visible")),
        (True, Variant.cuda, 1, ("nccl", 1, "--distributed")),
        (True, Variant.cpu, 0, ("gloo", 2, "--distributed")),
        (None, Variant.cpu, 0, None),
        (False, Variant.cuda, 8, None),
    ],
)
def test_plan(
    enabled: bool | None, expect: Variant, gpus: int, planned: tuple[str, int, str] | None
) -> None:
    facts = gpu_facts(gpus) if gpus else cpu_facts()
    evidence = plan_collective(CollectiveOptions(enabled), expect, facts, placement_ok=True)
    if planned is None:
        assert evidence is None
    else:
        assert evidence is not None and evidence.plan is not None
        plan = evidence.plan
        assert (plan.backend, plan.world_size, plan.why) == planned


def test_asked_for_but_impossible_is_a_failed_line() -> None:
    facts = cpu_facts()
    assert facts.torch is not None
    no_dist = replace(facts, torch=replace(facts.torch, distributed=False))
    evidence = plan_collective(CollectiveOptions(True), Variant.cpu, no_dist, placement_ok=True)
    assert evidence is not None and evidence.plan is None
    (check,) = collective_checks(evidence, no_dist)
    assert (check.status.value, check.detail) == (
        "fail",
        f"not run: torch {facts.torch.version} is built without torch.distributed",
    )
    cuda = plan_collective(CollectiveOptions(True), Variant.cuda, facts, placement_ok=False)
    assert cuda is not None and cuda.skipped == "not run: cuda did not pass the placement check"


@pytest.mark.parametrize(
    ("visible", "count", "indices"),
    [(None, 2, (0, 1)), ("2,3", 2, (2, 3)), ("GPU-5c0b8a3e,GPU-11f2", 2, ()), ("", 0, ())],
)
def test_ranks_map_to_the_drivers_gpus(
    visible: str | None, count: int, indices: tuple[int, ...]
) -> None:
    environment = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    facts = gpu_facts(count, **environment) if count else cpu_facts(**environment)
    evidence = plan_collective(CollectiveOptions(True), Variant.cuda, facts, placement_ok=True)
    assert evidence is not None
    assert (evidence.plan.gpus if evidence.plan else ()) == indices


# --- bandwidth ---------------------------------------------------------------------------------


def bandwidth_stage(*sizes: tuple[int, float]) -> dict[str, Any]:
    return {
        "sizes": [{"bytes": b, "seconds": s, "iters": 20, "wrong_elements": 0} for b, s in sizes]
    }


def test_nccl_tests_definitions() -> None:
    """8 ranks, 1 GiB in 5 ms: algbw = 2^30 / 0.005 / 1e9 = 214.7 GB/s, busbw = algbw · 14/8."""
    stage = {**PASSED_CHECKS, "bandwidth": bandwidth_stage((1 << 30, 0.005))}
    run = a_run(*(done(r, stage) for r in range(8)), backend="nccl", returncode=0)
    (figure,) = bandwidth.measured(run)
    assert figure.algbw == pytest.approx(214.748, rel=1e-4)
    assert figure.busbw == pytest.approx(214.748 * 14 / 8, rel=1e-4)
    assert bandwidth.bus_factor(1) == 0.0


def nv18() -> Topology:
    topology = parse_topology((DATA / "nvidia-smi-topo-8gpu-nv18.txt").read_text())
    assert topology is not None
    return topology


def test_expectation_from_the_topology() -> None:
    capabilities = dict.fromkeys(range(8), "9.0")
    expected = bandwidth.expected(nv18(), tuple(range(8)), capabilities)
    assert expected is not None
    assert expected.gb_s == 450.0  # 18 NVLink 4 links x 25 GB/s per direction
    pcie = parse_topology((DATA / "nvidia-smi-topo-2gpu-phb.txt").read_text())
    links = parse_pcie_links((DATA / "nvidia-smi-query-pcie-2gpu-gen4.csv").read_text())
    assert pcie is not None and links is not None
    slow = bandwidth.expected(replace(pcie, pcie=links), (0, 1), {0: "8.9", 1: "8.9"})
    assert slow is not None
    assert (slow.gb_s, slow.basis) == (pytest.approx(8 * 1.969), "PCIe 4.0 x8 (PHB)")
    assert bandwidth.expected(pcie, (0, 1), {}) is None  # PCIe links not read: no claim
    assert bandwidth.expected(nv18(), (0, 1), {0: "7.5", 1: "7.5"}) is None  # no NVLink rating


def eight_gpu_run(seconds_for_1gib: float) -> CollectiveRun:
    stage = {
        **PASSED_CHECKS,
        "init": {"nccl_version": "2.27.5"},
        "bandwidth": bandwidth_stage((1 << 20, 0.0001), (1 << 30, seconds_for_1gib)),
    }
    return a_run(*(done(r, stage) for r in range(8)), backend="nccl", returncode=0)


def test_eight_healthy_gpus_pass_with_their_figures() -> None:
    run = eight_gpu_run(0.0055)  # busbw 341.6 GB/s: 76% of 450
    checks = judged(run, gpu_facts(8), nv18())
    assert checks["collective"].status.value == "pass"
    assert "8 ranks (nccl, torchrun, one per GPU) NCCL 2.27.5" in checks["collective"].detail
    assert "1 GiB 341.65" in checks["collective.bandwidth"].detail
    assert "links allow 450 GB/s (NV18 x 25 GB/s" in checks["collective.bandwidth"].detail
    assert checks["collective.topology"].detail == "28 GPU pair(s): NV18 ×28"
    assert checks["collective.p2p"].detail == "peer access in all 56 directions"
    assert "pitfall.slow-all-reduce" not in checks
    data = collective_json(
        CollectiveEvidence(CollectivePlan("nccl", 8, "8 GPUs visible", tuple(range(8))),
                           run=run, topology=nv18()),
        gpu_facts(8),
    )  # fmt: skip
    assert data["expected_busbw_gb_s"] == 450.0
    assert data["bandwidth"][-1]["busbw_gb_s"] == pytest.approx(341.6, abs=0.1)
    assert data["topology"]["links"]["0-1"] == "NV18"
    assert data["nccl_version"] == "2.27.5"


def test_bandwidth_far_below_the_links_is_named() -> None:
    run = eight_gpu_run(0.05)  # busbw 37.6 GB/s: 8% of 450
    slow = judged(run, gpu_facts(8), nv18())["pitfall.slow-all-reduce"]
    assert slow.status.value == "warn"
    assert slow.detail == (
        "all-reduce bus bandwidth 37.6 GB/s at 1 GiB, under 25% of the 450 GB/s the slowest "
        "link allows (NV18 x 25 GB/s (NVLink, compute capability 9.0))"
    )


# --- environment, /dev/shm, P2P ---------------------------------------------------------------


def test_nccl_variables_left_set() -> None:
    facts = gpu_facts(2, NCCL_P2P_DISABLE="1", NCCL_IB_DISABLE="1", NCCL_DEBUG="INFO",
                      NCCL_NVLS_ENABLE="0")  # fmt: skip
    run = a_run(done(0), done(1), backend="nccl", returncode=0)
    found = judged(run, facts)["pitfall.nccl-variables"]
    assert found.status.value == "warn"
    assert found.detail.startswith("NCCL_P2P_DISABLE=1: peer-to-peer (NVLink / PCIe) is off")
    assert "NCCL_IB_DISABLE=1" in found.detail and "NCCL_NVLS_ENABLE=0" in found.detail
    assert "NCCL_DEBUG" not in found.detail  # harmless, and what the fixes ask for
    assert found.fix is not None and "unset NCCL_P2P_DISABLE NCCL_IB_DISABLE" in found.fix
    assert "pitfall.nccl-variables" not in judged(run, gpu_facts(2, NCCL_P2P_DISABLE="0"))
    assert "pitfall.nccl-variables" not in judged(a_run(done(0), done(1), returncode=0), facts)


def test_a_containers_small_dev_shm() -> None:
    small = {"pid": 1, "shm_bytes": 64 << 20}
    run = a_run(rank(0, start=small, finished=dict(PASSED_CHECKS), done=True), done(1),
                backend="nccl", returncode=0)  # fmt: skip
    found = judged(run, gpu_facts(2))["pitfall.small-shm"]
    assert found.detail.startswith("/dev/shm is 64 MiB; NCCL needs more")
    assert found.fix is not None and "--shm-size=1g" in found.fix


def test_p2p_off_between_two_gpus() -> None:
    facts = gpu_facts(2)
    assert facts.torch is not None
    no_p2p = replace(facts, torch=replace(facts.torch, peer_access=((True, False), (False, True))))
    topology = parse_topology((DATA / "nvidia-smi-topo-2gpu-phb.txt").read_text())
    checks = judged(a_run(done(0), done(1), backend="nccl", returncode=0), no_p2p, topology)
    assert checks["collective.p2p"].status.value == "warn"
    assert checks["pitfall.p2p-off"].detail.startswith(
        "torch.cuda.can_device_access_peer is False for cuda:0–cuda:1 (PHB)"
    )


# What one H200 measured with world size 1 (doctor --distributed --expect cuda, NCCL 2.28.9):
# the same ~24 µs from 1 MiB to 1 GiB, which as S / t would read 43,257 GB/s at 1 GiB.
ONE_H200_SECONDS = (
    (1 << 20, 2.477135058143176e-05),
    (1 << 24, 2.347375084355008e-05),
    (1 << 28, 2.168474929931108e-05),
    (1 << 30, 2.482264972059056e-05),
)


def one_h200_run() -> CollectiveRun:
    stage = {**PASSED_CHECKS, "bandwidth": bandwidth_stage(*ONE_H200_SECONDS)}
    return a_run(done(0, stage), backend="nccl", returncode=0)


def test_one_rank_reports_latency_and_no_bandwidth() -> None:
    one = parse_topology((DATA / "nvidia-smi-topo-1gpu-h200-captured-2026-12-02.txt").read_text())
    checks = judged(one_h200_run(), gpu_facts(1), one)
    line = checks["collective.bandwidth"]
    assert line.status.value == "skip"
    assert line.detail.startswith("not measured: bandwidth needs ≥ 2 ranks")
    assert "1 MiB 24.8 µs, 16 MiB 23.5 µs, 256 MiB 21.7 µs, 1 GiB 24.8 µs" in line.detail
    assert "GB/s" not in line.detail
    assert checks["collective"].status.value == "pass"
    assert checks["collective.topology"].detail == (
        "1 GPU(s) in `nvidia-smi topo -m`; no pair among the ranks"
    )
    assert "collective.p2p" not in checks
    assert not [c for c in checks if c.startswith("pitfall.")]
    assert Topology((0,), {(0, 0): "X"}, {0: PcieLink(5, 16)}).pairs() == []


def test_one_rank_json_has_null_bandwidths_with_the_reason() -> None:
    run = one_h200_run()
    plan = CollectivePlan("nccl", 1, "--distributed", (0,))
    data = collective_json(CollectiveEvidence(plan, run=run), gpu_facts(1))
    assert data["bandwidth_null_reason"] == bandwidth.ONE_RANK
    assert [(b["bytes"], b["seconds"]) for b in data["bandwidth"]] == list(ONE_H200_SECONDS)
    assert {(b["algbw_gb_s"], b["busbw_gb_s"]) for b in data["bandwidth"]} == {(None, None)}
    assert data["expected_busbw_gb_s"] is None
    two = a_run(done(0, dict(one_h200_run().ranks[0].finished)), done(1), backend="nccl")
    assert bandwidth.unmeasured(two.world_size) is None
    assert bandwidth.measured(two)[-1].busbw == pytest.approx(2**30 / 2.482264972059056e-05 / 1e9)
