"""All-reduce bandwidth: the nccl-tests figures from timed runs, and what the links allow.

nccl-tests' definitions (NVIDIA/nccl-tests, ``doc/PERFORMANCE.md``): for an all-reduce of S
bytes taking t seconds, the algorithm bandwidth is ``algbw = S / t`` and the bus bandwidth
``busbw = algbw * 2(n-1)/n`` for n ranks, the traffic each link carries in a ring, so busbw
compares with a link's own (unidirectional) bandwidth whatever n is. With one rank the
all-reduce moves no data between ranks (its time does not grow with the size: about 25 µs
from 1 MiB to 1 GiB on one H200), so ``S / t`` is no bandwidth of anything: one rank's
figures are its latency only, and both bandwidths are None (``ONE_RANK`` says why).

The expectation is the slowest link between the GPUs in use, per direction:

- NVLink: ``NV<n>`` from ``nvidia-smi topo -m`` times one link's bandwidth for the GPU's NVLink
  generation (``NVLINK_GB_S``);
- PCIe: lanes times one lane's rate for the link's generation (``PCIE_LANE_GB_S``), the lower of the
  two GPUs' links (``nvidia-smi --query-gpu=pcie.link.gen.max,pcie.link.width.max``).

Healthy runs reach most of that at large sizes (nccl-tests' page compares busbw with the
hardware's peak); ``FAR_BELOW`` flags a run that gets less than a quarter of it, far enough
below to be a fault (P2P off, a link down, NCCL_P2P_DISABLE) rather than noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from setup_tool.doctor.collective_run import CollectiveRun
from setup_tool.doctor.topology import Topology

GB = 1e9  # nccl-tests reports GB/s in powers of ten

# One NVLink's bandwidth per direction, GB/s, by compute capability. NVIDIA's NVLink page
# gives each generation's total per GPU, both directions, and its link count: NVLink 2 (V100,
# 7.0): 300 GB/s over 6 links; NVLink 3 (A100, 8.0): 600 GB/s over 12; NVLink 4 (H100/H200,
# 9.0): 900 GB/s over 18; NVLink 5 (B200, 10.0): 1,800 GB/s over 18. The GeForce/RTX A-series
# bridge of Ampere (8.6): 112.5 GB/s over 4 links (NVIDIA RTX A6000 datasheet).
NVLINK_GB_S: Mapping[str, float] = {
    "7.0": 25.0,
    "8.0": 25.0,
    "8.6": 14.0625,
    "9.0": 25.0,
    "10.0": 50.0,
}

# One PCIe lane per direction, GB/s: 8, 16, 32 GT/s with 128b/130b encoding (PCIe 3.0-5.0), 64
# GT/s with 242/256-byte FLITs (PCIe 6.0) (PCI-SIG, PCI Express Base Specifications).
PCIE_LANE_GB_S: Mapping[int, float] = {3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}

FAR_BELOW = 0.25

MIN_RANKS = 2  # an all-reduce moves data only between two or more ranks
ONE_RANK = "bandwidth needs ≥ 2 ranks: one rank's all-reduce moves no data"


@dataclass(frozen=True)
class Measured:
    bytes: int
    seconds: float  # the mean of the timed iterations, the slowest rank's: the latency
    algbw: float | None  # GB/s; None with one rank (``unmeasured``)
    busbw: float | None  # GB/s; None with one rank


@dataclass(frozen=True)
class Expectation:
    gb_s: float  # the slowest link between the GPUs in use, per direction
    basis: str  # "NV18 x 25 GB/s (NVLink, compute capability 9.0)"


def format_size(count: int) -> str:
    """Bytes in binary units, as nccl-tests' sizes are powers of two: "16 MiB"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} B"


def bus_factor(ranks: int) -> float:
    return 2 * (ranks - 1) / ranks if ranks > 0 else 0.0


def unmeasured(world_size: int) -> str | None:
    """Why a run of ``world_size`` ranks has no bandwidth figures, or None when it has them."""
    return ONE_RANK if world_size < MIN_RANKS else None


def measured(run: CollectiveRun) -> tuple[Measured, ...]:
    """Rank 0's bandwidth stage, as nccl-tests figures (every rank times the slowest); with one
    rank only the latency, the bandwidths None."""
    if not run.ranks:
        return ()
    stage = run.ranks[0].finished.get("bandwidth") or {}
    figures = []
    for entry in stage.get("sizes", ()):
        size, seconds = int(entry["bytes"]), float(entry["seconds"])
        if seconds <= 0:
            continue
        if unmeasured(run.world_size) is not None:
            figures.append(Measured(size, seconds, None, None))
            continue
        algbw = size / seconds / GB
        figures.append(Measured(size, seconds, algbw, algbw * bus_factor(run.world_size)))
    return tuple(figures)


def expected(
    topology: Topology | None, gpus: tuple[int, ...], capabilities: Mapping[int, str]
) -> Expectation | None:
    """The slowest link among ``gpus`` (driver indices); None when a link cannot be rated."""
    if topology is None or len(gpus) < 2:
        return None
    rated = []
    for a in gpus:
        for b in gpus:
            if a < b:
                link = _link_rate(topology, a, b, capabilities)
                if link is None:
                    return None
                rated.append(link)
    return min(rated, key=lambda e: e.gb_s)


def _link_rate(
    topology: Topology, a: int, b: int, capabilities: Mapping[int, str]
) -> Expectation | None:
    links = topology.nvlinks(a, b)
    if links is not None:
        capability = capabilities.get(a)
        per_link = NVLINK_GB_S.get(capability or "")
        if per_link is None or capability != capabilities.get(b):
            return None
        return Expectation(
            links * per_link,
            f"NV{links} x {per_link:g} GB/s (NVLink, compute capability {capability})",
        )
    first, second = topology.pcie.get(a), topology.pcie.get(b)
    if first is None or second is None:
        return None
    generation = min(first.generation, second.generation)
    lanes = min(first.width, second.width)
    lane = PCIE_LANE_GB_S.get(generation)
    if lane is None:
        return None
    path = topology.link(a, b) or "PCIe"
    return Expectation(lanes * lane, f"PCIe {generation}.0 x{lanes} ({path})")
