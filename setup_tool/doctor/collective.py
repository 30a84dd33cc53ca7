"""The collective check: do the GPUs (or 2 CPU processes) work together through torch.distributed?

``plan_collective`` decides whether it runs and how: NCCL with one rank per visible GPU when
the expected accelerator is CUDA, gloo with 2 CPU processes otherwise; by default only where
the environment sees two or more GPUs, always with ``--distributed``. ``collective_checks``
turns the run (``collective_run.py``), the topology (``topology.py``) and the probe's peer
access into report lines and the pitfalls of ``collective_pitfalls.py``; ``collective_json``
is the ``collective`` object of ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setup_tool.doctor import bandwidth
from setup_tool.doctor.collective_pitfalls import (
    COLLECTIVE_PITFALLS,
    STAGE_NAMES,
    CollectiveContext,
    CollectivePitfall,
    failure_of,
)
from setup_tool.doctor.collective_run import Backend, CollectiveRun
from setup_tool.doctor.facts import ProbeFacts
from setup_tool.doctor.pitfalls import Finding
from setup_tool.doctor.result import Check, Status
from setup_tool.doctor.topology import Topology
from setup_tool.variants import Variant

DEFAULT_COLLECTIVE_TIMEOUT_S = 30.0
CPU_RANKS = 2  # gloo on the CPU: the smallest world that exercises every collective


@dataclass(frozen=True)
class CollectiveOptions:
    enabled: bool | None = None  # None: when the environment sees two or more GPUs
    timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S  # how long a collective waits for a rank


@dataclass(frozen=True)
class CollectivePlan:
    backend: Backend
    world_size: int
    why: str  # "--distributed", "2 GPUs visible"
    gpus: tuple[int, ...] = ()  # the driver's index of each rank's GPU, when known


@dataclass(frozen=True)
class CollectiveEvidence:
    """The plan and what came of it, or why it did not run (``skipped``)."""

    plan: CollectivePlan | None
    skipped: str | None = None
    required: bool = False  # asked for with --distributed: not running is a failure
    run: CollectiveRun | None = None
    topology: Topology | None = None


def plan_collective(
    options: CollectiveOptions, expect: Variant, facts: ProbeFacts | None, placement_ok: bool
) -> CollectiveEvidence | None:
    """How the check runs, why it does not (as evidence), or None when it is not relevant."""
    if options.enabled is False or facts is None or facts.torch is None:
        return None
    torch = facts.torch
    gpus = torch.cuda_device_count if expect is Variant.cuda else 0
    asked = options.enabled is True
    if not asked and gpus < 2:
        return None
    why = "--distributed" if asked else f"{gpus} GPUs visible"

    def skip(reason: str) -> CollectiveEvidence:
        return CollectiveEvidence(None, reason, required=asked)

    if torch.broken:
        return skip("not run: torch does not work (see torch above)")
    if torch.distributed is False:
        return skip(f"not run: torch {torch.version} is built without torch.distributed")
    if not placement_ok:
        return skip(f"not run: {expect.value} did not pass the placement check")
    if expect is not Variant.cuda:
        return CollectiveEvidence(CollectivePlan("gloo", CPU_RANKS, why))
    if gpus == 0:
        return skip("not run: torch sees no CUDA device")
    if torch.nccl is False:
        return skip(f"not run: torch {torch.version} is built without NCCL")
    driver = _driver_indices(facts.environment.get("CUDA_VISIBLE_DEVICES"), gpus)
    return CollectiveEvidence(CollectivePlan("nccl", gpus, why, driver))


def _driver_indices(visible: str | None, count: int) -> tuple[int, ...]:
    """The driver's index of each visible GPU: CUDA_VISIBLE_DEVICES lists them in order (NVIDIA,
    "CUDA Environment Variables"); UUIDs or MIG names cannot be mapped to nvidia-smi's rows."""
    if visible is None:
        return tuple(range(count))
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if len(parts) >= count and all(p.isdigit() for p in parts[:count]):
        return tuple(int(p) for p in parts[:count])
    return ()


def collective_checks(evidence: CollectiveEvidence, facts: ProbeFacts) -> list[Check]:
    """The report lines: the run, its bandwidth, the topology, P2P, then the pitfalls found."""
    run, plan = evidence.run, evidence.plan
    if run is None or plan is None:
        status = Status.failed if evidence.required else Status.skipped
        detail = evidence.skipped or "not run"
        fix = "fix the failure above first" if evidence.required else None
        return [Check("collective", "collective", status, detail, fix)]
    ctx = CollectiveContext(run, facts, evidence.topology, plan.gpus)
    found = [(p, f) for p in COLLECTIVE_PITFALLS if (f := p.find(ctx)) is not None]
    checks = [_run_check(run, found)]
    figures = bandwidth.measured(run)
    if figures:
        checks.append(_bandwidth_check(run, figures, _expectation(ctx)))
    if run.backend == "nccl":
        checks.append(_topology_check(evidence.topology, plan))
    peer = facts.torch.peer_access if facts.torch else ()
    if len(peer) > 1:
        checks.append(_p2p_check(peer, found))
    for pitfall, finding in found:
        status = Status.failed if finding.blocking else Status.warned
        checks.append(
            Check(f"pitfall.{pitfall.id}", pitfall.title, status, finding.detail, finding.fix)
        )
    return checks


def _run_check(run: CollectiveRun, found: list[tuple[CollectivePitfall, Finding]]) -> Check:
    how = f"{run.world_size} rank{'s' if run.world_size > 1 else ''} ({run.backend}, torchrun"
    how += ", one per GPU)" if run.backend == "nccl" else ", CPU processes)"
    causes = [p.title for p, f in found if f.blocking]
    if causes or not run.passed:
        failure = failure_of(run)
        where = ""
        if failure is not None and failure.ranks:
            stage = failure.ranks[0].stage or ""
            where = f": stopped in {STAGE_NAMES.get(stage, stage)}"
        fix = f"see {', '.join(causes)} below" if causes else "rerun with NCCL_DEBUG=INFO"
        return Check("collective", "collective", Status.failed, how + where, fix)
    rank0 = run.ranks[0]
    checks = rank0.finished.get("all_reduce", {}).get("checks", ())
    sizes = sorted({int(c["elements"]) for c in checks})
    dtypes = sorted({str(c["dtype"]) for c in checks})
    nccl = rank0.finished.get("init", {}).get("nccl_version")
    work = sum(
        float(e.get("seconds") or 0)
        for stage, e in rank0.finished.items()
        if stage not in ("import", "rendezvous")
    )
    detail = (
        f"{how}{f' NCCL {nccl}' if nccl else ''} · all-reduce exact ({', '.join(dtypes)}; "
        f"{' and '.join(f'{n:,}' for n in sizes)} elements) · broadcast · all-gather · "
        f"collectives {work:.1f} s, {run.seconds:.1f} s with the ranks' start"
    )
    return Check("collective", "collective", Status.passed, detail)


def _expectation(ctx: CollectiveContext) -> bandwidth.Expectation | None:
    capabilities = {
        driver: device.capability
        for driver, device in zip(ctx.gpus, ctx.facts.devices, strict=False)
        if device.capability
    }
    return bandwidth.expected(ctx.topology, ctx.gpus, capabilities)


def _bandwidth_check(
    run: CollectiveRun,
    figures: tuple[bandwidth.Measured, ...],
    expectation: bandwidth.Expectation | None,
) -> Check:
    iters = run.workload.iters
    reason = bandwidth.unmeasured(run.world_size)
    if reason is not None:  # one rank: its latency is all there is to report
        latency = ", ".join(
            f"{bandwidth.format_size(m.bytes)} {m.seconds * 1e6:.1f} µs" for m in figures
        )
        detail = f"not measured: {reason}; all-reduce latency {latency} (mean of {iters})"
        return Check("collective.bandwidth", "all-reduce bw", Status.skipped, detail)
    shown = ", ".join(f"{bandwidth.format_size(m.bytes)} {m.busbw or 0:.2f}" for m in figures)
    algbw = ", ".join(f"{m.algbw or 0:.2f}" for m in figures)
    detail = f"busbw GB/s: {shown} (algbw {algbw}); nccl-tests definitions, mean of {iters}, "
    detail += "slowest rank"
    if expectation is not None:
        detail += f"; the links allow {expectation.gb_s:.0f} GB/s ({expectation.basis})"
    return Check("collective.bandwidth", "all-reduce bw", Status.passed, detail)


def _topology_check(topology: Topology | None, plan: CollectivePlan) -> Check:
    if topology is None:
        return Check(
            "collective.topology", "topology", Status.skipped, "`nvidia-smi topo -m` unreadable"
        )
    pairs = [(a, b) for a in plan.gpus for b in plan.gpus if a < b]
    if not pairs:
        return Check(
            "collective.topology",
            "topology",
            Status.passed,
            f"{len(topology.gpus)} GPU(s) in `nvidia-smi topo -m`; no pair among the ranks",
        )
    kinds: dict[str, int] = {}
    for a, b in pairs:
        link = topology.link(a, b) or "?"
        kinds[link] = kinds.get(link, 0) + 1
    links = ", ".join(f"{kind} ×{count}" for kind, count in sorted(kinds.items()))
    pcie = sorted({(p.generation, p.width) for p in topology.pcie.values()})
    pcie_text = "; PCIe " + ", ".join(f"{g}.0 x{w}" for g, w in pcie) if pcie else ""
    return Check(
        "collective.topology",
        "topology",
        Status.passed,
        f"{len(pairs)} GPU pair(s): {links}{pcie_text}",
    )


def _p2p_check(
    peer: tuple[tuple[bool | None, ...], ...], found: list[tuple[CollectivePitfall, Finding]]
) -> Check:
    pairs = [(a, b) for a in range(len(peer)) for b in range(len(peer)) if a != b]
    allowed = sum(1 for a, b in pairs if peer[a][b])
    if allowed == len(pairs):
        return Check(
            "collective.p2p", "P2P", Status.passed, f"peer access in all {allowed} directions"
        )
    return Check(
        "collective.p2p",
        "P2P",
        Status.warned,
        f"peer access in {allowed} of {len(pairs)} directions",
        "see P2P below" if any(p.id == "p2p-off" for p, _ in found) else None,
    )


def collective_json(evidence: CollectiveEvidence, facts: ProbeFacts | None) -> dict[str, Any]:
    """The ``collective`` object of ``--json`` (docs/doctor.md documents every key)."""
    run, plan = evidence.run, evidence.plan
    data: dict[str, Any] = {
        "ran": run is not None,
        "skipped": evidence.skipped,
        "backend": plan.backend if plan else None,
        "world_size": plan.world_size if plan else None,
        "why": plan.why if plan else None,
        "topology": evidence.topology.to_json() if evidence.topology else None,
    }
    if run is None:
        return data
    data.update(_run_json(run))
    expectation = None
    if plan is not None and facts is not None:
        expectation = _expectation(CollectiveContext(run, facts, evidence.topology, plan.gpus))
    data["expected_busbw_gb_s"] = expectation.gb_s if expectation else None
    data["expected_basis"] = expectation.basis if expectation else None
    return data


def _run_json(run: CollectiveRun) -> dict[str, Any]:
    rank0 = run.ranks[0] if run.ranks else None
    return {
        "passed": run.passed,
        "timeout_s": run.timeout_s,
        "wall_timeout_s": run.wall_timeout_s,
        "seconds": round(run.seconds, 3),
        "returncode": run.returncode,
        "timed_out": run.timed_out,
        "nccl_version": rank0.finished.get("init", {}).get("nccl_version") if rank0 else None,
        "ranks": [
            {
                "rank": r.rank,
                "outcome": r.outcome(run.timed_out),
                "stage": r.stage,
                "error": r.error,
                "exit_code": r.exit_code,
                "pid": r.pid,
                "shm_bytes": r.start.get("shm_bytes"),
                "stage_seconds": {s: e.get("seconds") for s, e in r.finished.items()},
            }
            for r in run.ranks
        ],
        "checks": [
            dict(c, stage=stage)
            for stage in ("all_reduce", "broadcast", "all_gather")
            for c in (rank0.finished.get(stage, {}).get("checks", ()) if rank0 else ())
        ],
        "bandwidth_null_reason": bandwidth.unmeasured(run.world_size),
        "bandwidth": [
            {
                "bytes": m.bytes,
                "seconds": m.seconds,
                "algbw_gb_s": m.algbw,
                "busbw_gb_s": m.busbw,
            }
            for m in bandwidth.measured(run)
        ],
    }
