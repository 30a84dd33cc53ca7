"""``nvidia-smi topo -m`` and the PCIe link query, read from the files in tests/data/."""

from __future__ import annotations

from pathlib import Path

import pytest

from setup_tool.doctor.topology import (
    PCIE_COMMAND,
    TOPO_COMMAND,
    PcieLink,
    parse_pcie_links,
    parse_topology,
    read_topology,
)
from setup_tool.runner import CommandResult

DATA = Path(__file__).parent / "data"


def topo(name: str) -> str:
    return (DATA / f"nvidia-smi-topo-{name}.txt").read_text()


def test_eight_gpus_on_nvswitch() -> None:
    topology = parse_topology(topo("8gpu-nv18"))
    assert topology is not None
    assert topology.gpus == tuple(range(8))
    assert len(topology.pairs()) == 28
    assert {topology.link(a, b) for a, b in topology.pairs()} == {"NV18"}
    assert topology.nvlinks(3, 7) == 18
    assert topology.link(5, 5) == "X"


def test_two_cards_behind_the_cpu_tab_separated() -> None:
    topology = parse_topology(topo("2gpu-phb"))
    assert topology is not None
    assert (topology.gpus, topology.link(0, 1), topology.nvlinks(0, 1)) == ((0, 1), "PHB", None)


def test_nvlink_pairs_with_nic_rows_and_columns() -> None:
    topology = parse_topology(topo("4gpu-nvlink-pairs-nics"))
    assert topology is not None
    assert topology.gpus == (0, 1, 2, 3)
    assert topology.link(0, 1) == topology.link(2, 3) == "NV4"
    assert topology.link(1, 2) == topology.link(0, 3) == "SYS"
    assert all(isinstance(a, int) and isinstance(b, int) for a, b in topology.links)


def test_an_older_driver_with_soc_and_a_device_named_nic() -> None:
    topology = parse_topology(topo("4gpu-old-driver-soc"))
    assert topology is not None
    assert topology.link(0, 1) == "PIX"
    assert topology.link(1, 2) == "SOC"


def test_one_gpu() -> None:
    topology = parse_topology(topo("1gpu"))
    assert topology is not None
    assert (topology.gpus, topology.pairs()) == ((0,), [])


def test_one_h200_as_captured_with_an_underlined_header() -> None:
    """The real output of one H200 (driver 580.159.04, redirected to a file): the header is
    wrapped in ESC[4m ... ESC[0m, which used to make the whole matrix unreadable."""
    text = topo("1gpu-h200-captured-2026-12-02")
    assert "\x1b[4mGPU0\t" in text and "GPU NUMA ID\x1b[0m" in text  # the bytes as captured
    topology = parse_topology(text)
    assert topology is not None
    assert (topology.gpus, topology.pairs(), topology.link(0, 0)) == ((0,), [], "X")
    assert topology.to_json() == {"gpus": [0], "links": {}, "pcie": {}}


def test_escapes_around_a_two_gpu_header_are_ignored() -> None:
    underlined = topo("2gpu-phb").replace("\tGPU0", "\t\x1b[4mGPU0", 1)
    underlined = underlined.replace("GPU NUMA ID", "GPU NUMA ID\x1b[0m", 1)
    assert underlined != topo("2gpu-phb")
    assert parse_topology(underlined) == parse_topology(topo("2gpu-phb"))


@pytest.mark.parametrize(
    "text",
    [
        topo("driver-error"),
        "",
        "GPU0\tGPU1\n",  # a header and nothing under it
        "\tGPU0\tGPU1\nGPU0\t X \tNV4\n",  # GPU1's row missing
        "\tGPU0\tGPU1\nGPU0\t X \nGPU1\tNV4\t X \n",  # a row cut short
        "\tGPU0\tGPU1\nGPU0\tNV4\tNV4\nGPU1\tNV4\t X \n",  # no X on the diagonal
    ],
    ids=["driver-error", "empty", "header-only", "row-missing", "row-short", "no-self"],
)
def test_anything_else_reads_as_none(text: str) -> None:
    assert parse_topology(text) is None


def test_pcie_links() -> None:
    links = parse_pcie_links((DATA / "nvidia-smi-query-pcie-2gpu-gen4.csv").read_text())
    assert links == {0: PcieLink(4, 16), 1: PcieLink(4, 8)}
    assert parse_pcie_links("0, [N/A], 16\n") is None
    assert parse_pcie_links("") is None


def runner_for(outputs: dict[tuple[str, ...], CommandResult]):  # type: ignore[no-untyped-def]
    def runner(argv, *, timeout=0, env=None, cwd=None):  # type: ignore[no-untyped-def]
        return outputs.get(tuple(argv), CommandResult(tuple(argv), None, error="not found"))

    return runner


def test_read_topology_through_the_runner() -> None:
    runner = runner_for(
        {
            TOPO_COMMAND: CommandResult(TOPO_COMMAND, 0, topo("8gpu-nv18")),
            PCIE_COMMAND: CommandResult(
                PCIE_COMMAND, 0, (DATA / "nvidia-smi-query-pcie-8gpu.csv").read_text()
            ),
        }
    )
    topology = read_topology(runner)
    assert topology is not None
    assert topology.pcie[7] == PcieLink(5, 16)
    assert topology.to_json()["links"]["0-7"] == "NV18"  # type: ignore[index]


def test_read_topology_without_nvidia_smi_is_none() -> None:
    assert read_topology(runner_for({})) is None
    failing = runner_for({TOPO_COMMAND: CommandResult(TOPO_COMMAND, 9, topo("driver-error"))})
    assert read_topology(failing) is None
