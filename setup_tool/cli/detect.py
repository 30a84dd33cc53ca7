"""``setup-tool detect``: render a ``Detection`` as a table or JSON, and exit 3 when unsupported."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import JsonOption, VariantOption
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.detect import Detection, Platform
from setup_tool.errors import ExitCode


@app.command()
def detect(
    variant: VariantOption = None,
    json_output: JsonOption = False,
    explain: Annotated[
        bool, typer.Option("--sources", help="Show where each fact came from.")
    ] = False,
) -> None:
    """Show this machine's facts and the PyTorch variant that fits it.

    The variant is cuda on Linux with an NVIDIA driver that runs a conda-forge CUDA build of
    PyTorch (12.9 or 13.0), mps on Apple Silicon, cpu otherwise. A CUDA X.y build runs on a
    driver for CUDA X or newer (12.x: driver 525.60.13 or newer; 13.x: 580 or newer); a driver
    of an older minor gets a warning (CUDA minor-version compatibility). --variant, then
    SETUP_TOOL_VARIANT, override the choice; CONDA_OVERRIDE_CUDA overrides the driver's CUDA
    version as in conda (empty means no CUDA). Exit code 3 when no variant supports this
    platform.
    """
    from setup_tool.detect import detect as run_detect
    from setup_tool.detect import overrides_from

    terminal = Terminal(quiet=json_output)
    detection = run_detect(overrides_from(variant, os.environ), os.environ)
    if json_output:
        terminal.json(detection.to_json())
    else:
        show_full_width(terminal, render_detection(detection, show_sources=explain))
        for warning in detection.target.warnings:
            terminal.warn(escape(warning))
    if not detection.target.supported:
        if not json_output:
            terminal.error(
                escape(f"unsupported platform: {detection.target.reason}"),
                "setup-tool locks linux-64, linux-aarch64 and osx-arm64",
            )
        fail(ExitCode.UNSUPPORTED_PLATFORM)


def show_full_width(terminal: Terminal, table: Table) -> None:
    """Print ``table`` on stdout; outside a terminal (a pipe, a file) at its natural width, so
    that no value is cut to fit 80 columns: what is piped is meant to be read in full."""
    out = terminal.out
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update(width=100_000), table).maximum
    wide = Console(
        file=out.file,
        width=max(natural, out.width),
        highlight=False,
        soft_wrap=True,
        no_color=out.no_color,
        color_system=None,
    )
    wide.print(table)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.1f} GiB"


Row = tuple[str, str, str | None]  # (fact, value, key into Platform.sources)


def render_detection(detection: Detection, *, show_sources: bool = False) -> Table:
    """The facts and the decision, one row each; sources in a third column with --sources."""
    platform = detection.platform
    table = Table(title="setup-tool detect", show_header=show_sources, title_justify="left")
    table.add_column("fact", style="bold")
    table.add_column("value")
    if show_sources:
        table.add_column("source", style="dim")
    for index, rows in enumerate((_machine_rows(platform, show_sources), _target_rows(detection))):
        if index:
            table.add_section()
        for name, value, source_key in rows:
            cells = [name, value]
            if show_sources:
                cells.append(escape(platform.sources.get(source_key, "")) if source_key else "")
            table.add_row(*cells)
    return table


def _machine_rows(platform: Platform, show_sources: bool) -> list[Row]:
    rows: list[Row] = [
        ("OS", escape(f"{platform.os} {platform.machine} ({platform.subdir})"), "machine"),
        (
            "Python",
            escape(
                f"{platform.python_version} ({platform.python_machine}) "
                f"{platform.python_executable}"
            ),
            None,
        ),
    ]
    if platform.os == "darwin":
        rows += [
            ("macOS", escape(platform.macos_version or "unknown"), "macos.version"),
            ("Apple Silicon", _yes_no(platform.apple_silicon), "macos.apple_silicon"),
            ("Rosetta", _yes_no(platform.rosetta), "macos.rosetta"),
        ]
    if platform.os == "linux":
        rows += [
            ("Distribution", escape(platform.distribution or "unknown"), "linux.distribution"),
            ("glibc", escape(platform.glibc_version or "unknown"), "linux.glibc"),
            *_nvidia_rows(platform, show_sources),
        ]
    cpu = f"{platform.cpu_model or 'unknown'} × {platform.cpu_count or '?'}"
    conda = ", ".join(f"{k} ({v})" for k, v in platform.conda_executables.items()) or "none"
    rows += [
        ("CPU", escape(cpu), "cpu.model"),
        ("Memory", _gib(platform.memory_bytes), "cpu.memory_bytes"),
        ("conda executables", escape(conda), None),
    ]
    return rows


def _nvidia_rows(platform: Platform, show_sources: bool) -> list[Row]:
    nvidia = platform.nvidia
    if nvidia is None:
        if show_sources:
            return [("NVIDIA driver", escape(platform.unknown.get("nvidia", "none")), None)]
        return [("NVIDIA driver", "none found (--sources says where it looked)", None)]
    rows: list[Row] = [
        ("NVIDIA driver", escape(nvidia.driver_version or "unknown"), "nvidia.driver_version"),
        ("Driver CUDA", escape(nvidia.cuda_version or "unknown"), "nvidia.cuda_version"),
    ]
    if not nvidia.gpus:
        rows.append(("GPUs", escape(platform.unknown.get("nvidia.gpus", "none")), None))
    for gpu in nvidia.gpus:
        memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "? GiB"
        value = f"{gpu.name}, {memory}, compute capability {gpu.compute_capability or '?'}"
        rows.append((f"GPU {gpu.index}", escape(value), "nvidia.gpus"))
    if platform.cuda_visible_devices is not None:
        rows.append(("CUDA_VISIBLE_DEVICES", escape(repr(platform.cuda_visible_devices)), None))
    return rows


def _target_rows(detection: Detection) -> list[Row]:
    target = detection.target
    style = "bold green" if target.supported else "bold red"
    rows: list[Row] = [
        ("Variant", f"[{style}]{target.name}[/] (from {escape(target.variant_source)})", None),
        ("Why", escape(target.reason), None),
    ]
    if target.cuda_build or target.driver_cuda:
        cuda = f"build {target.cuda_build or '-'}, driver {target.driver_cuda or '-'}"
        if target.cuda_fit is not None:
            cuda += f" (rule: {target.cuda_fit.rule})"
        rows.append(("CUDA", escape(cuda), None))
    if target.virtual_packages:
        packages = " ".join(str(vp) for vp in target.virtual_packages)
        rows.append(("Virtual packages", escape(packages), None))
    if target.variant is not None:
        rows.append(("Lockfile", f"envs/locks/{target.variant.value}.conda-lock.yml", None))
    return rows
