"""Reading the NVIDIA driver, the CUDA version it supports, and its GPUs.

Sources, most reliable first (the order rattler/pixi and uv use: rattler's
``crates/rattler_virtual_packages/src/cuda.rs``, uv's ``crates/uv-torch/src/accelerator.rs``):

1. NVML through nvidia-ml-py: driver version, ``nvmlSystemGetCudaDriverVersion_v2`` (the
   newest CUDA the driver supports, what conda calls ``__cuda``), and every GPU.
2. ``/sys/module/nvidia/version`` and ``/proc/driver/nvidia/version``: the driver version only.
3. ``nvidia-smi``: one CSV line per GPU (name, memory, compute capability, driver), and the
   header's "CUDA Version". Bounded by a timeout: a wedged driver can make it hang.

Each reader returns its value or None (with the reason), never raises for a missing source.
The parsers take text, so tests feed them captured outputs from ``tests/data/``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setup_tool.cuda_compat import cuda_from_driver
from setup_tool.detect.facts import Gpu, Nvidia
from setup_tool.runner import CommandResult, Runner

SYS_DRIVER_VERSION = Path("/sys/module/nvidia/version")
PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
NVIDIA_SMI_TIMEOUT_S = 5.0

SMI_QUERY_FIELDS = ("index", "name", "driver_version", "memory.total", "compute_cap", "uuid")
# nvidia-smi older than ~510 has no compute_cap field and rejects the whole query.
SMI_QUERY_FIELDS_OLD = ("index", "name", "driver_version", "memory.total", "uuid")

_VERSION_IN_PROC = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)")
_CUDA_IN_HEADER = re.compile(r"CUDA Version:\s*(\d+\.\d+)")


@dataclass(frozen=True)
class NvidiaReading:
    """What the NVIDIA sources said: the facts, where each came from, and why any is missing."""

    nvidia: Nvidia | None
    sources: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)


# --- NVML -------------------------------------------------------------------------------------


def cuda_version_from_int(value: int) -> str:
    """NVML/CUDA encode versions as 1000*major + 10*minor: 13000 → "13.0", 12090 → "12.9"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_nvml(load: Callable[[], Any] | None = None) -> tuple[Nvidia | None, str | None]:
    """The driver, its CUDA and GPUs from NVML, or (None, reason)."""
    try:
        pynvml = load() if load else __import__("pynvml")
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML: {_nvml_reason(exc)}"
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = cuda_version_from_int(int(pynvml.nvmlSystemGetCudaDriverVersion_v2()))
        gpus = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                Gpu(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_mib=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // 2**20,
                    compute_capability=f"{major}.{minor}",
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                )
            )
        return Nvidia(driver_version=driver, cuda_version=cuda, gpus=tuple(gpus)), None
    except Exception as exc:
        return None, f"NVML failed: {_nvml_reason(exc)}"
    finally:
        # Shutting down a half-initialised NVML is best effort.
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _nvml_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "NVML Shared Library Not Found" in text or "LibraryNotFound" in type(exc).__name__:
        return "libnvidia-ml not found"
    return text


# --- driver version files ---------------------------------------------------------------------


def parse_driver_version_file(text: str) -> str | None:
    """The driver version from /sys/module/nvidia/version or /proc/driver/nvidia/version."""
    text = text.strip()
    if re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        return text
    match = _VERSION_IN_PROC.search(text)
    return match.group(1) if match else None


def read_driver_version_file(path: Path) -> tuple[str | None, str | None]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None, f"no {path}"
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    version = parse_driver_version_file(text)
    return (version, None) if version else (None, f"{path}: no driver version in it")


# --- nvidia-smi -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmiReading:
    driver_version: str | None
    cuda_version: str | None
    gpus: tuple[Gpu, ...]


def parse_smi_query(text: str, fields: tuple[str, ...] = SMI_QUERY_FIELDS) -> tuple[Gpu, ...]:
    """GPUs from ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``, one per line.

    Raises ValueError on output that is not that CSV (garbage, an error message).
    """
    gpus = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(fields):
            raise ValueError(f"unexpected nvidia-smi line: {line.strip()[:80]!r}")
        row = dict(zip(fields, cells, strict=True))
        memory = row.get("memory.total", "")
        capability = row.get("compute_cap")
        gpus.append(
            Gpu(
                index=int(row["index"]),
                name=row["name"],
                memory_mib=int(float(memory)) if _is_number(memory) else None,
                compute_capability=capability if capability and _is_number(capability) else None,
                uuid=row.get("uuid") or None,
            )
        )
    if not gpus:
        raise ValueError("nvidia-smi listed no GPU")
    return tuple(gpus)


def smi_driver_versions(text: str, fields: tuple[str, ...] = SMI_QUERY_FIELDS) -> set[str]:
    """Every driver_version cell of the query output (one per GPU; they should agree)."""
    column = fields.index("driver_version")
    return {line.split(",")[column].strip() for line in text.strip().splitlines()}


def parse_smi_header_cuda(text: str) -> str | None:
    """The "CUDA Version: 13.0" of plain ``nvidia-smi``: the newest CUDA the driver supports."""
    match = _CUDA_IN_HEADER.search(text)
    return match.group(1) if match else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_nvidia_smi(
    runner: Runner, timeout: float = NVIDIA_SMI_TIMEOUT_S
) -> tuple[SmiReading | None, str | None]:
    """GPUs, driver and CUDA from nvidia-smi, all within ``timeout`` seconds in total."""
    import time

    deadline = time.monotonic() + timeout

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    fields: tuple[str, ...] = SMI_QUERY_FIELDS
    result = _query(runner, fields, remaining())
    if not result.ok and result.error is None and "compute_cap" in (result.stdout + result.stderr):
        fields = SMI_QUERY_FIELDS_OLD
        result = _query(runner, fields, remaining())
    if not result.ok:
        return None, f"nvidia-smi: {result.why_not()}"
    try:
        gpus = parse_smi_query(result.stdout, fields)
        drivers = smi_driver_versions(result.stdout, fields)
    except ValueError as exc:
        return None, f"nvidia-smi printed output that could not be read ({exc})"
    header = runner(["nvidia-smi"], timeout=remaining())
    cuda = parse_smi_header_cuda(header.stdout) if header.ok else None
    driver = sorted(drivers)[0] if len(drivers) == 1 else None
    return SmiReading(driver, cuda, gpus), None


def _query(runner: Runner, fields: tuple[str, ...], timeout: float) -> CommandResult:
    argv = ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    return runner(argv, timeout=timeout)


# --- all sources together ---------------------------------------------------------------------


def read_nvidia(
    runner: Runner,
    *,
    nvml_loader: Callable[[], Any] | None = None,
    driver_files: tuple[Path, ...] | None = None,
    smi_timeout: float = NVIDIA_SMI_TIMEOUT_S,
) -> NvidiaReading:
    """NVML if it works; otherwise the driver files and nvidia-smi, each fact from the best."""
    nvidia, nvml_error = read_nvml(nvml_loader)
    if nvidia is not None:
        return NvidiaReading(
            nvidia,
            sources=dict.fromkeys(
                ("nvidia.driver_version", "nvidia.cuda_version", "nvidia.gpus"), "nvml"
            ),
        )
    reasons = [str(nvml_error)]
    if driver_files is None:  # read at call time, so tests can point the constants elsewhere
        driver_files = (SYS_DRIVER_VERSION, PROC_DRIVER_VERSION)
    sources: dict[str, str] = {}
    unknown: dict[str, str] = {}

    driver = None
    for path in driver_files:
        driver, why = read_driver_version_file(path)
        if driver:
            sources["nvidia.driver_version"] = str(path)
            break
        reasons.append(str(why))

    smi, smi_error = read_nvidia_smi(runner, smi_timeout)
    if smi is None:
        reasons.append(str(smi_error))
    if driver is None and smi is None:
        unknown["nvidia"] = "no NVIDIA driver found: " + "; ".join(reasons)
        return NvidiaReading(None, sources, unknown)

    if driver is None and smi is not None and smi.driver_version:
        driver = smi.driver_version
        sources["nvidia.driver_version"] = "nvidia-smi"
    gpus: tuple[Gpu, ...] = ()
    if smi is not None:
        gpus = smi.gpus
        sources["nvidia.gpus"] = "nvidia-smi"
    else:
        unknown["nvidia.gpus"] = str(smi_error)

    cuda = smi.cuda_version if smi is not None else None
    if cuda:
        sources["nvidia.cuda_version"] = "nvidia-smi"
    elif driver and (cuda := cuda_from_driver(driver)):
        sources["nvidia.cuda_version"] = f"driver {driver} (NVIDIA's minimum-driver table)"
    else:
        unknown["nvidia.cuda_version"] = "neither NVML nor nvidia-smi reported it"
    return NvidiaReading(
        Nvidia(driver_version=driver, cuda_version=cuda, gpus=gpus), sources, unknown
    )
