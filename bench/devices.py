"""Device names → torch devices: validation, ``auto`` and ``all``, synchronisation, facts.

``auto`` is the best device here (the first CUDA GPU, else MPS, else the CPU); ``all`` is every
available one in turn, the seed's comparison. A device that is not available is a usage error
that says why and points to ``setup-tool doctor``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .errors import BenchUsageError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps, all"
_DOCTOR = "run `setup-tool doctor` to see why and how to fix it"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def available_devices() -> list[str]:
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if _cuda_ok() else []
    if _mps_available():
        devices.append("mps")
    return [*devices, "cpu"]


def _cuda_ok() -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def resolve(requested: str) -> list[str]:
    """The concrete devices a ``--device`` value names, in the order they run."""
    name = requested.strip().lower()
    if name == "all":
        return available_devices()
    if name == "auto":
        return available_devices()[:1]
    if name == "cpu":
        return ["cpu"]
    if name == "mps":
        if not _mps_available():
            raise BenchUsageError(
                f"--device mps: MPS is not available here ({_mps_why()})", _DOCTOR
            )
        return ["mps"]
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not _cuda_ok():
            raise BenchUsageError(
                f"--device {name}: CUDA is not available here ({_cuda_why()})", _DOCTOR
            )
        index = int(match.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise BenchUsageError(
                f"--device {name}: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}",
                _DOCTOR,
            )
        return [f"cuda:{index}"]
    raise BenchUsageError(f"unknown device {requested!r}", f"choose one of: {DEVICE_CHOICES}")


def _cuda_why() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU"


def _mps_why() -> str:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return f"torch {torch.__version__} is built without MPS"
    return "this torch has MPS, but the OS or the Python (Rosetta?) cannot use it"


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device``: call before every clock read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_facts(device: torch.device) -> dict[str, Any]:
    facts: dict[str, Any] = {"type": device.type, "index": device.index, "name": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_bytes=props.total_memory,
            multiprocessors=props.multi_processor_count,
        )
    elif device.type == "mps":
        facts["name"] = "Apple GPU (MPS)"
    else:
        facts["name"] = "CPU"
        facts["threads"] = torch.get_num_threads()
    return facts


def peak_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps" and hasattr(torch.mps, "driver_allocated_memory"):
        return int(torch.mps.driver_allocated_memory())
    return None
