"""Known ways GPUs fail to work together: a table of pitfall → check → fix for the collective check.

Like ``pitfalls.py`` for one device: each ``CollectivePitfall`` is a pure function of what the
collective run recorded (``CollectiveRun``), the probe's facts (environment, peer access, GPU
models) and the topology nvidia-smi reported, returning a ``Finding`` or None. The first four
explain a failed run (exactly one of them fires: ``failure_of`` decides which); the rest are
warnings about a run that passed but will be slow or fragile.

Sources are in comments beside each fact; ``docs/doctor.md`` repeats the table.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from setup_tool.doctor import bandwidth
from setup_tool.doctor.collective_run import CollectiveRun, RankReport
from setup_tool.doctor.facts import ProbeFacts
from setup_tool.doctor.pitfalls import Finding
from setup_tool.doctor.topology import Topology

STAGE_NAMES = {
    "import": "import torch",
    "rendezvous": "the rendezvous (every rank checking in)",
    "init": "init_process_group",
    "all_reduce": "the all-reduce",
    "broadcast": "the broadcast",
    "all_gather": "the all-gather",
    "bandwidth": "the bandwidth all-reduces",
    "destroy": "destroy_process_group",
}
DEBUG_HINT = {
    # NCCL_DEBUG=INFO: NCCL's own log of transports and errors (NCCL docs, "Environment
    # Variables"); TORCH_DISTRIBUTED_DEBUG=DETAIL: PyTorch's collective checks (PyTorch docs,
    # "Distributed communication package", Debugging).
    "nccl": "NCCL_DEBUG=INFO",
    "gloo": "TORCH_DISTRIBUTED_DEBUG=DETAIL",
}
HANG_CAUSES = {
    "nccl": "NCCL variables left set, peer-to-peer broken by the IOMMU or PCIe ACS (NCCL "
    "troubleshooting guide), a network interface NCCL cannot use (NCCL_SOCKET_IFNAME)",
    "gloo": "a rank stopped or starved of CPU, a firewall, a network interface gloo cannot "
    "use (GLOO_SOCKET_IFNAME)",
}
SIGNALS = {-6: "SIGABRT", -9: "SIGKILL", -11: "SIGSEGV", -7: "SIGBUS", -15: "SIGTERM"}
TIMEOUT_WORDS = ("timed out", "timeout", "time out")


@dataclass(frozen=True)
class CollectiveContext:
    run: CollectiveRun
    facts: ProbeFacts
    topology: Topology | None = None
    gpus: tuple[int, ...] = ()  # the driver's indices of the ranks' GPUs, when known


@dataclass(frozen=True)
class CollectivePitfall:
    id: str
    title: str
    find: Callable[[CollectiveContext], Finding | None]


# --- a failed run: why -----------------------------------------------------------------------

FailureKind = Literal["torchrun", "died", "hang", "error"]


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    ranks: tuple[RankReport, ...]  # the ranks at fault: died, did not answer, raised


def failure_of(run: CollectiveRun) -> Failure | None:
    """What went wrong first. A rank that died on its own (killed, crashed) explains the
    others' errors; else ranks that never answered (stopped by torchrun while still in a
    collective, or still running at the deadline) explain the others' timeouts."""
    if run.passed:
        return None
    outcomes = {r.rank: r.outcome(run.timed_out) for r in run.ranks}
    if all(o == "missing" for o in outcomes.values()):
        return Failure("torchrun", ())
    # SIGABRT is what NCCL's watchdog does to a rank that waited past the timeout: a victim.
    died = [r for r in run.ranks if outcomes[r.rank] == "died" and r.exit_code != -6]
    if died:
        return Failure("died", tuple(died))
    silent = [r for r in run.ranks if outcomes[r.rank] in ("stopped", "hung", "missing")]
    if silent:
        return Failure("hang", tuple(silent))
    failed = [r for r in run.ranks if outcomes[r.rank] == "failed"]
    if failed:
        return Failure("error", tuple(failed))
    return Failure("died", tuple(r for r in run.ranks if not r.done))


def _torchrun_failed(ctx: CollectiveContext) -> Finding | None:
    failure = failure_of(ctx.run)
    if failure is None or failure.kind != "torchrun":
        return None
    last = ctx.run.stderr_tail.strip().splitlines()[-1:] or ["(no output)"]
    how = "timed out" if ctx.run.timed_out else f"exited with {ctx.run.returncode}"
    return Finding(
        f"torchrun started no rank ({how}): {last[0]}",
        f"run it by hand to see why: `{shlex.join(ctx.run.argv[:3])} --help`; torchrun "
        "comes with torch (torch.distributed.run)",
    )


def _rank_died(ctx: CollectiveContext) -> Finding | None:
    failure = failure_of(ctx.run)
    if failure is None or failure.kind != "died":
        return None
    parts = [f"rank {r.rank} {_death(r)} during {_stage(r)}" for r in failure.ranks]
    consequences = _others(ctx.run, failure.ranks)
    return Finding(
        "; ".join(parts) + (f"; then {consequences}" if consequences else ""),
        "a rank killed by the system: `dmesg | tail` shows the out-of-memory killer or a "
        "crash (Xid errors for a GPU); rerun with "
        f"{DEBUG_HINT[ctx.run.backend]} to see the rank's last steps",
    )


def _hang(ctx: CollectiveContext) -> Finding | None:
    failure = failure_of(ctx.run)
    if failure is None or failure.kind != "hang":
        return None
    if ctx.run.timed_out:
        silent = ", ".join(f"rank {r.rank} in {_stage(r)}" for r in failure.ranks)
        detail = (
            f"no answer within the doctor's {ctx.run.wall_timeout_s:g} s: {silent}; the run "
            "was stopped"
        )
    else:
        waited = _others(ctx.run, failure.ranks)
        where = "; ".join(f"rank {r.rank} did not answer in {_stage(r)}" for r in failure.ranks)
        detail = where + (f"; {waited}" if waited else "")
    return Finding(
        detail,
        f"a rank stuck before or in a collective: rerun with {DEBUG_HINT[ctx.run.backend]} to "
        f"see where. Common causes: {HANG_CAUSES[ctx.run.backend]}; a slow machine needs more "
        f"time (--distributed-timeout, now {ctx.run.timeout_s:g} s; --timeout for the whole run)",
    )


def _rank_error(ctx: CollectiveContext) -> Finding | None:
    failure = failure_of(ctx.run)
    if failure is None or failure.kind != "error":
        return None
    first = failure.ranks[0]
    more = f" (and {len(failure.ranks) - 1} more ranks)" if len(failure.ranks) > 1 else ""
    return Finding(
        f"rank {first.rank} failed in {_stage(first)}{more}: {short_error(first.error)}",
        f"rerun with {DEBUG_HINT[ctx.run.backend]} for the cause; an NCCL 'unhandled system "
        "error' is usually /dev/shm or a network interface (see below)",
    )


def _wrong_result(ctx: CollectiveContext) -> Finding | None:
    wrong = []
    for report in ctx.run.ranks:
        for stage in ("all_reduce", "broadcast", "all_gather"):
            for check in report.finished.get(stage, {}).get("checks", ()):
                if check.get("mismatches"):
                    wrong.append((report.rank, stage, check))
        for size in report.finished.get("bandwidth", {}).get("sizes", ()):
            if size.get("wrong_elements"):
                wrong.append((report.rank, "bandwidth", {"mismatches": size["wrong_elements"]}))
    if not wrong:
        return None
    rank, stage, check = wrong[0]
    where = (
        f"{check['dtype']} over {check['elements']:,} elements: {check['mismatches']:,} wrong, "
        f"element {check['first_index']} is {check['got']} instead of {check['expected']}"
        if "first_index" in check
        else f"{check['mismatches']:,} elements wrong"
    )
    if ctx.run.backend == "gloo":
        fix = (
            "the CPU processes exchanged wrong data: reinstall torch from the lock and run a "
            "memory test (memtest86+); check that no other program writes the same shared memory"
        )
    else:
        fix = (
            "data is corrupted between GPUs: rerun with NCCL_P2P_DISABLE=1; if it then passes, "
            "peer-to-peer is broken (disable the IOMMU or PCIe ACS, NCCL troubleshooting "
            "guide, 'PCI Access Control Services'); else check `nvidia-smi -q -d ECC`"
        )
    return Finding(f"{STAGE_NAMES[stage]} gave rank {rank} a wrong result ({where})", fix)


def short_error(error: str | None) -> str:
    """An error's first sentence without gloo's source location: torch's collective errors
    read "RuntimeError: [/path/gloo/transport/tcp/pair.cc:545] Read error ...: Connection
    reset by peer. This is typically caused by ..."."""
    text = re.sub(r"^(\w+: )\[[^\]]*\.(?:cc|cpp|h):\d+\] ", r"\1", error or "")
    first = re.split(r"(?<=[a-z)])\. ", text, maxsplit=1)[0]
    return first


def _death(report: RankReport) -> str:
    code = report.exit_code
    if code is None:
        return "ended without a word (killed, or crashed in native code)"
    if code < 0:
        return f"was killed by {SIGNALS.get(code, f'signal {-code}')}"
    return f"exited with status {code}"


def _stage(report: RankReport) -> str:
    return STAGE_NAMES.get(report.stage or "", report.stage or "its last stage")


def _others(run: CollectiveRun, culprits: tuple[RankReport, ...]) -> str:
    """What the other ranks saw: the timeout or the broken connection, in their words."""
    seen = []
    for report in run.ranks:
        if report in culprits or report.done:
            continue
        if report.error:
            waited = any(w in report.error.lower() for w in TIMEOUT_WORDS)
            verb = f"waited {run.timeout_s:g} s and gave up" if waited else "failed"
            seen.append(
                f"rank {report.rank} {verb} in {_stage(report)}: {short_error(report.error)}"
            )
        elif report.exit_code == -6:
            seen.append(
                f"rank {report.rank} was aborted (SIGABRT) in {_stage(report)}, as NCCL's "
                f"watchdog does after {run.timeout_s:g} s"
            )
    return "; ".join(seen[:2])


# --- a run that passed, but will be slow or fragile -------------------------------------------

# /dev/shm: NCCL's shared-memory transport and its intra-node buffers live there; a container's
# default is 64 MiB, which makes NCCL fail at init ("unhandled system error", a bus error in
# ncclShmOpen). NCCL's troubleshooting guide ("Docker") and PyTorch's own CI
# (pytorch/tutorials#2475, --shm-size=2gb "to prevent crashes during NCCL initialization")
# raise it to a gigabyte or more.
SHM_MINIMUM_BYTES = 1 << 30


def _small_shm(ctx: CollectiveContext) -> Finding | None:
    if ctx.run.backend != "nccl" or ctx.run.world_size < 2 or not ctx.run.ranks:
        return None
    size = ctx.run.ranks[0].start.get("shm_bytes")
    if not isinstance(size, int) or size >= SHM_MINIMUM_BYTES:
        return None
    return Finding(
        f"/dev/shm is {size / (1 << 20):.0f} MiB; NCCL needs more between GPUs of one machine "
        f"(a container's default is 64 MiB)",
        "start the container with `--shm-size=1g` (or `--ipc=host`); in Kubernetes, mount an "
        "`emptyDir: {medium: Memory}` volume at /dev/shm",
        blocking=False,
    )


@dataclass(frozen=True)
class Variable:
    """An NCCL setting that, left set, changes how collectives run (NCCL docs, "Environment
    Variables")."""

    effect: str
    matters: Callable[[str], bool]


def _set(value: str) -> bool:
    return bool(value.strip())


def _disabled(value: str) -> bool:
    return value.strip() not in ("", "0")


NCCL_VARIABLES: Mapping[str, Variable] = {
    "NCCL_P2P_DISABLE": Variable(
        "peer-to-peer (NVLink / PCIe) is off: NCCL copies through host memory", _disabled
    ),
    "NCCL_P2P_LEVEL": Variable("peer-to-peer only up to this distance", _set),
    "NCCL_SHM_DISABLE": Variable("the shared-memory transport is off", _disabled),
    "NCCL_IB_DISABLE": Variable(
        "InfiniBand / RoCE is off: between machines NCCL falls back to TCP sockets", _disabled
    ),
    "NCCL_NET_GDR_LEVEL": Variable("GPUDirect RDMA limited to this distance", _set),
    "NCCL_SOCKET_IFNAME": Variable(
        "NCCL's sockets use only these interfaces (a wrong name hangs init)", _set
    ),
    "NCCL_ALGO": Variable("the algorithm is forced (a debugging setting)", _set),
    "NCCL_PROTO": Variable("the protocol is forced (a debugging setting)", _set),
    "NCCL_MAX_NCHANNELS": Variable("fewer channels: less bandwidth", _set),
    "NCCL_NVLS_ENABLE": Variable(
        "NVLink SHARP is off: all-reduce on NVSwitch systems loses the switch's offload",
        lambda v: v.strip() == "0",
    ),
}


def _nccl_variables(ctx: CollectiveContext) -> Finding | None:
    if ctx.run.backend != "nccl":
        return None
    environment = ctx.facts.environment
    found = [
        (name, value, variable)
        for name, variable in NCCL_VARIABLES.items()
        if (value := environment.get(name)) is not None and variable.matters(value)
    ]
    if not found:
        return None
    detail = "; ".join(f"{name}={value}: {v.effect}" for name, value, v in found)
    names = " ".join(name for name, _, _ in found)
    return Finding(
        detail,
        f"unset them unless they work around a known problem on this machine: `unset {names}`",
        blocking=False,
    )


def _p2p_off(ctx: CollectiveContext) -> Finding | None:
    access = ctx.facts.torch.peer_access if ctx.facts.torch else ()
    off = [
        (a, b)
        for a, row in enumerate(access)
        for b, allowed in enumerate(row)
        if a < b and allowed is False
    ]
    if not off:
        return None
    shown = ", ".join(f"cuda:{a}–cuda:{b}{_link_text(ctx, a, b)}" for a, b in off[:4])
    more = f" and {len(off) - 4} more" if len(off) > 4 else ""
    return Finding(
        f"torch.cuda.can_device_access_peer is False for {shown}{more}: NCCL copies between "
        "them through host memory",
        "GeForce cards have peer-to-peer turned off by the driver; on data-center GPUs it is "
        "usually the IOMMU or PCIe ACS (NCCL troubleshooting guide, 'PCI Access Control "
        "Services'): check `nvidia-smi topo -p2p r`",
        blocking=False,
    )


def _link_text(ctx: CollectiveContext, a: int, b: int) -> str:
    if ctx.topology is None or len(ctx.gpus) <= max(a, b):
        return ""
    link = ctx.topology.link(ctx.gpus[a], ctx.gpus[b])
    return f" ({link})" if link else ""


def _slow_all_reduce(ctx: CollectiveContext) -> Finding | None:
    figures = bandwidth.measured(ctx.run)
    capabilities = {
        driver: device.capability
        for driver, device in zip(ctx.gpus, ctx.facts.devices, strict=False)
        if device.capability
    }
    expectation = bandwidth.expected(ctx.topology, ctx.gpus, capabilities)
    if not figures or expectation is None or ctx.run.world_size < 2:
        return None
    largest = figures[-1]
    size = bandwidth.format_size(largest.bytes)
    if largest.busbw is None or largest.busbw >= bandwidth.FAR_BELOW * expectation.gb_s:
        return None
    return Finding(
        f"all-reduce bus bandwidth {largest.busbw:.1f} GB/s at {size}, under "
        f"{bandwidth.FAR_BELOW:.0%} of the {expectation.gb_s:.0f} GB/s the slowest link "
        f"allows ({expectation.basis})",
        "look for NCCL_P2P_DISABLE / NCCL_P2P_LEVEL (see NCCL variables), peer-to-peer off "
        "(see P2P), or a link below its rating (`nvidia-smi nvlink -s`, "
        "`nvidia-smi -q -d PCIE`); compare with nccl-tests' all_reduce_perf",
        blocking=False,
    )


COLLECTIVE_PITFALLS: tuple[CollectivePitfall, ...] = (
    CollectivePitfall("collective-torchrun", "torchrun", _torchrun_failed),
    CollectivePitfall("collective-rank-died", "rank died", _rank_died),
    CollectivePitfall("collective-hang", "collective hang", _hang),
    CollectivePitfall("collective-error", "collective error", _rank_error),
    CollectivePitfall("collective-wrong-result", "wrong result", _wrong_result),
    CollectivePitfall("nccl-variables", "NCCL variables", _nccl_variables),
    CollectivePitfall("small-shm", "/dev/shm", _small_shm),
    CollectivePitfall("p2p-off", "P2P", _p2p_off),
    CollectivePitfall("slow-all-reduce", "all-reduce bandwidth", _slow_all_reduce),
)
