"""How the GPUs are linked, as ``nvidia-smi`` reports it: the matrix of ``nvidia-smi topo -m``
and each GPU's PCIe link (``nvidia-smi --query-gpu=...pcie.link...``).

``topo -m`` prints one row per GPU (and per NIC) with one cell per column: ``X`` for itself,
``NV<n>`` for a bonded set of n NVLinks, and for PCIe paths, nearest first, ``PIX`` (at most one
PCIe bridge), ``PXB`` (several bridges), ``PHB`` (through a PCIe host bridge, the CPU),
``NODE`` (between host bridges of one NUMA node) and ``SYS`` (across the SMP interconnect
between NUMA nodes, QPI/UPI); older drivers print ``SOC`` for ``SYS`` (the legend nvidia-smi
prints under the matrix). Columns after the GPUs and NICs (CPU and NUMA affinity) are not read.
Recent drivers underline the header with ANSI escapes (``ESC[4m`` ... ``ESC[0m``) even when
the output is not a terminal; they are removed before reading. One GPU gives a 1-by-1 matrix: one
GPU, no pairs.

Readers return None for anything they cannot read (no nvidia-smi, a driver error, a format
they do not know), never raise; tests/data/nvidia-smi-topo-*.txt are what they are tested on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from setup_tool.runner import Runner

TOPO_COMMAND = ("nvidia-smi", "topo", "-m")
PCIE_COMMAND = (
    "nvidia-smi",
    "--query-gpu=index,pcie.link.gen.max,pcie.link.width.max",
    "--format=csv,noheader,nounits",
)
PCIE_PATHS = ("PIX", "PXB", "PHB", "NODE", "SYS", "SOC")
NVIDIA_SMI_TIMEOUT_S = 10.0

_DEVICE = re.compile(r"^(GPU|NIC)(\d+)$|^mlx\d+_\d+$")
# ECMA-48 control sequences (CSI: ESC [ parameters final-byte), e.g. SGR underline ESC[4m.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class PcieLink:
    generation: int
    width: int


@dataclass(frozen=True)
class Topology:
    """GPU-to-GPU links by GPU index (``links[(0, 1)] == "NV18"``), plus PCIe links if read."""

    gpus: tuple[int, ...]
    links: Mapping[tuple[int, int], str]
    pcie: Mapping[int, PcieLink] = field(default_factory=dict)

    def link(self, a: int, b: int) -> str | None:
        return self.links.get((a, b))

    def nvlinks(self, a: int, b: int) -> int | None:
        """The number of NVLinks between two GPUs; None when they are linked over PCIe."""
        match = re.fullmatch(r"NV(\d+)", self.link(a, b) or "")
        return int(match.group(1)) if match else None

    def pairs(self) -> list[tuple[int, int]]:
        return [(a, b) for a in self.gpus for b in self.gpus if a < b]

    def to_json(self) -> dict[str, object]:
        return {
            "gpus": list(self.gpus),
            "links": {f"{a}-{b}": self.links[(a, b)] for a, b in self.pairs()},
            "pcie": {
                str(i): {"generation": p.generation, "width": p.width}
                for i, p in sorted(self.pcie.items())
            },
        }


def parse_topology(text: str) -> Topology | None:
    """The GPU matrix of ``nvidia-smi topo -m``, or None when ``text`` is not one."""
    plain = _ANSI_ESCAPE.sub("", text)
    lines = [line for line in plain.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if line.split()[:1] == ["GPU0"]), None)
    if header_at is None:
        return None
    columns = _columns(lines[header_at])
    gpu_columns = {i: int(name[3:]) for i, name in enumerate(columns) if name.startswith("GPU")}
    links: dict[tuple[int, int], str] = {}
    rows: list[int] = []
    for line in lines[header_at + 1 :]:
        cells = line.split()
        if not cells or not re.fullmatch(r"GPU\d+", cells[0]):
            if cells and _DEVICE.match(cells[0]):
                continue  # a NIC row
            break  # the legend
        gpu = int(cells[0][3:])
        if len(cells) < 1 + len(gpu_columns):
            return None
        rows.append(gpu)
        for position, other in gpu_columns.items():
            links[(gpu, other)] = cells[1 + position]
    if not rows or sorted(rows) != sorted(gpu_columns.values()):
        return None
    if any(links[(g, g)] != "X" for g in rows):
        return None
    return Topology(tuple(sorted(rows)), links)


def _columns(header: str) -> list[str]:
    """The device columns of the header: GPU<n>, NIC<n> (or mlx5_0 on older drivers)."""
    names = []
    for token in header.split():
        if not _DEVICE.match(token):
            break  # "CPU Affinity" and what follows
        names.append(token)
    return names


def parse_pcie_links(text: str) -> dict[int, PcieLink] | None:
    """``index, gen, width`` lines of the PCIe query, or None when they are not that."""
    links = {}
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        index, generation, width = (int(p) for p in parts)
        links[index] = PcieLink(generation, width)
    return links or None


def read_topology(runner: Runner) -> Topology | None:
    """Both readings from this machine's nvidia-smi; None when the matrix cannot be read."""
    matrix = runner(TOPO_COMMAND, timeout=NVIDIA_SMI_TIMEOUT_S)
    topology = parse_topology(matrix.stdout) if matrix.ok else None
    if topology is None:
        return None
    pcie = runner(PCIE_COMMAND, timeout=NVIDIA_SMI_TIMEOUT_S)
    links = parse_pcie_links(pcie.stdout) if pcie.ok else None
    return Topology(topology.gpus, topology.links, links or {})
