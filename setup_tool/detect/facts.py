"""The facts about a machine, as frozen data. ``probe.py`` fills them; tests build them directly.

Every fact that can be missing is ``None`` when unknown; ``Platform.unknown`` says why, and
``Platform.sources`` says where each known fact came from (e.g. ``"nvidia": "nvml"``). The keys
of both are the dotted names used in ``detect --json`` (``"nvidia.driver_version"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# conda's subdir for each (OS, machine) pair this project can name (conda's own spelling).
_SUBDIRS: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("linux", "arm64"): "linux-aarch64",
    ("linux", "ppc64le"): "linux-ppc64le",
    ("linux", "s390x"): "linux-s390x",
    ("darwin", "arm64"): "osx-arm64",
    ("darwin", "x86_64"): "osx-64",
    ("windows", "amd64"): "win-64",
    ("windows", "x86_64"): "win-64",
    ("windows", "arm64"): "win-arm64",
}


def conda_subdir(os_name: str, machine: str) -> str:
    """conda's subdir name for an OS and machine, e.g. ``("linux", "x86_64")`` → ``linux-64``."""
    key = (os_name.lower(), machine.lower())
    return _SUBDIRS.get(key, f"{key[0]}-{key[1]}")


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU as the driver sees it (NVML ignores ``CUDA_VISIBLE_DEVICES``)."""

    index: int
    name: str
    memory_mib: int | None = None
    compute_capability: str | None = None  # "9.0"
    uuid: str | None = None


@dataclass(frozen=True)
class Nvidia:
    """The NVIDIA driver and its GPUs. ``cuda_version`` is the newest CUDA the driver supports."""

    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[Gpu, ...] = ()


@dataclass(frozen=True)
class Platform:
    """Everything setup-tool knows about a machine. Pure data: no methods probe anything."""

    os: str  # "linux", "darwin", "windows", ...
    machine: str  # hardware architecture: "x86_64", "arm64", "aarch64" (native, not Rosetta's)
    python_version: str = ""
    python_machine: str = ""  # architecture of the running interpreter (x86_64 under Rosetta)
    python_executable: str = ""
    # macOS
    macos_version: str | None = None
    apple_silicon: bool | None = None
    rosetta: bool | None = None
    # Linux
    glibc_version: str | None = None
    distribution: str | None = None
    kernel: str | None = None
    # NVIDIA; None when no driver was found
    nvidia: Nvidia | None = None
    cuda_visible_devices: str | None = None
    # Machine
    cpu_model: str | None = None
    cpu_count: int | None = None
    memory_bytes: int | None = None
    conda_executables: Mapping[str, str] = field(default_factory=dict)
    # Provenance
    sources: Mapping[str, str] = field(default_factory=dict)
    unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def subdir(self) -> str:
        """The conda subdir of the hardware (osx-arm64 on Apple Silicon, even under Rosetta)."""
        return conda_subdir(self.os, self.machine)

    @property
    def python_subdir(self) -> str:
        """The conda subdir of the running interpreter (osx-64 for a Python under Rosetta)."""
        return conda_subdir(self.os, self.python_machine or self.machine)

    def to_json(self) -> dict[str, Any]:
        """The ``platform`` object of ``detect --json`` (schema in docs/detect.md)."""
        nvidia = self.nvidia
        return {
            "os": self.os,
            "machine": self.machine,
            "subdir": self.subdir,
            "python": {
                "version": self.python_version,
                "machine": self.python_machine,
                "subdir": self.python_subdir,
                "executable": self.python_executable,
            },
            "macos": {
                "version": self.macos_version,
                "apple_silicon": self.apple_silicon,
                "rosetta": self.rosetta,
            },
            "linux": {
                "glibc": self.glibc_version,
                "distribution": self.distribution,
                "kernel": self.kernel,
            },
            "nvidia": None
            if nvidia is None
            else {
                "driver_version": nvidia.driver_version,
                "cuda_version": nvidia.cuda_version,
                "gpus": [
                    {
                        "index": g.index,
                        "name": g.name,
                        "memory_mib": g.memory_mib,
                        "compute_capability": g.compute_capability,
                        "uuid": g.uuid,
                    }
                    for g in nvidia.gpus
                ],
            },
            "cuda_visible_devices": self.cuda_visible_devices,
            "cpu": {
                "model": self.cpu_model,
                "count": self.cpu_count,
                "memory_bytes": self.memory_bytes,
            },
            "conda_executables": dict(self.conda_executables),
            "sources": dict(self.sources),
            "unknown": dict(self.unknown),
        }
