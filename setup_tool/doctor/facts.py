"""The probe's JSON as frozen data: what the target interpreter reported about itself.

``parse_probe`` reads the document ``probe.py`` prints (schema ``SCHEMA_VERSION``) into a
``ProbeFacts``. It is lenient about missing keys, so a probe recorded by an older setup-tool
still parses, and strict about shape: a document that is not the probe's raises
``ProbeFormatError``. Nothing here judges anything; ``checks.py`` and ``pitfalls.py`` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class ProbeFormatError(ValueError):
    """The JSON is not a probe document (another program's output, or a newer schema)."""


@dataclass(frozen=True)
class TorchBuild:
    """How torch was built and which backends it can use in this process."""

    version: str
    cuda: str | None = None  # torch.version.cuda: None for CPU-only and ROCm builds
    hip: str | None = None
    cudnn: int | None = None
    arch_list: tuple[str, ...] = ()
    cuda_available: bool = False
    cuda_device_count: int = 0
    cuda_error: str | None = None  # why a tensor could not be made on "cuda"
    mps_built: bool = False
    mps_available: bool = False
    mps_error: str | None = None
    import_seconds: float | None = None
    tf32_possible: bool = False  # TF32 could not be turned off for the check
    warnings: tuple[str, ...] = ()
    file: str | None = None  # torch.__file__: None for a namespace package
    path: str | None = None  # the package directory that was imported
    missing_api: tuple[str, ...] = ()  # "torch.tensor", ...: a torch that is not PyTorch
    # torch.distributed in this build (None: a probe from before these were recorded)
    distributed: bool | None = None
    nccl: bool | None = None
    gloo: bool | None = None
    # can_device_access_peer(a, b) for every pair of visible GPUs (two or more), else ()
    peer_access: tuple[tuple[bool | None, ...], ...] = ()

    @property
    def broken(self) -> bool:
        return bool(self.missing_api)


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str | None = None
    capability: str | None = None  # "9.0"
    memory_mib: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    """One operation on a device compared with the float64 CPU reference, and its timings."""

    max_abs_error: float | None  # None when the device produced NaN or infinity
    reference_max_abs: float
    finite: bool
    first_s: float | None = None  # cold: includes kernel loading and library initialisation
    warm_s: float | None = None  # best of the warm repeats

    @property
    def relative_error(self) -> float | None:
        if self.max_abs_error is None:
            return None
        return self.max_abs_error / self.reference_max_abs if self.reference_max_abs else 0.0


@dataclass(frozen=True)
class Placement:
    """The placement check on one device: move, convolution, matmul."""

    device: str  # "cpu", "cuda:0", "mps"
    dtype: str = "float32"
    tf32: bool = False
    stage: str = "move"  # the stage reached: move, conv, matmul, done
    moved_to: str | None = None
    round_trip_equal: bool | None = None
    error: str | None = None
    conv: Measurement | None = None
    matmul: Measurement | None = None

    @property
    def accelerator(self) -> str:
        return self.device.split(":", 1)[0]


@dataclass(frozen=True)
class NmsRun:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Torchvision:
    found: bool
    version: str | None = None
    ops_loaded: bool = False
    ops_error: str | None = None
    cuda: int | None = None  # torch.ops.torchvision._cuda_version(): 13000, or -1 for CPU builds
    nms: Mapping[str, NmsRun] = field(default_factory=dict)
    ops_checked: bool = True  # False: found, but torch did not work, so its ops were not tried


@dataclass(frozen=True)
class ProbeFacts:
    """Everything one probe run reported. ``raw`` is the document itself, for ``--json``."""

    python_version: str
    python_executable: str
    python_prefix: str | None
    system: str  # "linux", "darwin"
    machine: str  # platform.machine() of the target interpreter: x86_64 under Rosetta
    mac_ver: str | None = None
    translated: bool | None = None  # running under Rosetta 2
    environment: Mapping[str, str | None] = field(default_factory=dict)
    driver_version: str | None = None
    driver_cuda: str | None = None  # cuDriverGetVersion: the newest CUDA the driver supports
    torch: TorchBuild | None = None
    torch_error: str | None = None  # why ``import torch`` failed
    devices: tuple[CudaDevice, ...] = ()
    placement: tuple[Placement, ...] = ()
    torchvision: Torchvision | None = None
    seconds: float | None = None
    probe_error: str | None = None  # an error that stopped the probe, caught and recorded
    probe_error_origin: str = "probe"  # "torch": raised inside torch's files; "probe": a bug
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def placements(self, accelerator: str) -> tuple[Placement, ...]:
        return tuple(p for p in self.placement if p.accelerator == accelerator)


def parse_probe(data: Any) -> ProbeFacts:
    """``ProbeFacts`` from the probe's JSON (already decoded)."""
    if not isinstance(data, Mapping) or "python" not in data or "schema_version" not in data:
        raise ProbeFormatError("not a setup-tool probe document")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ProbeFormatError(
            f"probe schema {data['schema_version']!r}; this setup-tool reads {SCHEMA_VERSION}"
        )
    python = _mapping(data, "python")
    driver = _mapping(data, "nvidia_driver")
    torch = _mapping(data, "torch")
    probe = _mapping(data, "probe")
    return ProbeFacts(
        python_version=str(python.get("version", "")),
        python_executable=str(python.get("executable", "")),
        python_prefix=python.get("prefix"),
        system=str(python.get("system", "")),
        machine=str(python.get("machine", "")),
        mac_ver=python.get("mac_ver"),
        translated=python.get("translated"),
        environment=dict(_mapping(data, "environment")),
        driver_version=driver.get("version"),
        driver_cuda=driver.get("cuda"),
        torch=_torch(torch) if torch.get("imported") else None,
        torch_error=None if torch.get("imported") else torch.get("error"),
        devices=tuple(_device(d) for d in data.get("devices") or ()),
        placement=tuple(_placement(p) for p in data.get("placement") or ()),
        torchvision=_torchvision(data["torchvision"]) if data.get("torchvision") else None,
        seconds=probe.get("seconds"),
        probe_error=probe.get("error"),
        probe_error_origin=str(probe.get("error_origin") or "probe"),
        raw=data,
    )


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProbeFormatError(f"probe field {key!r} is not an object")
    return value


def _torch(torch: Mapping[str, Any]) -> TorchBuild:
    tf32 = torch.get("tf32") or {}
    distributed = torch.get("distributed") or {}
    return TorchBuild(
        version=str(torch.get("version", "")),
        cuda=torch.get("cuda"),
        hip=torch.get("hip"),
        cudnn=torch.get("cudnn"),
        arch_list=tuple(torch.get("arch_list") or ()),
        cuda_available=bool(torch.get("cuda_available")),
        cuda_device_count=int(torch.get("cuda_device_count") or 0),
        cuda_error=torch.get("cuda_error"),
        mps_built=bool(torch.get("mps_built")),
        mps_available=bool(torch.get("mps_available")),
        mps_error=torch.get("mps_error"),
        import_seconds=torch.get("import_seconds"),
        tf32_possible=bool(tf32.get("tf32_possible", tf32.get("forced_by_env"))),
        warnings=tuple(torch.get("warnings") or ()),
        file=torch.get("file"),
        path=torch.get("path"),
        missing_api=tuple(torch.get("missing_api") or ()),
        distributed=distributed.get("available"),
        nccl=distributed.get("nccl"),
        gloo=distributed.get("gloo"),
        peer_access=tuple(tuple(row) for row in torch.get("peer_access") or ()),
    )


def _device(device: Mapping[str, Any]) -> CudaDevice:
    return CudaDevice(
        index=int(device["index"]),
        name=device.get("name"),
        capability=device.get("capability"),
        memory_mib=device.get("memory_mib"),
        error=device.get("error"),
    )


def _measurement(value: Mapping[str, Any] | None) -> Measurement | None:
    if not value:
        return None
    return Measurement(
        max_abs_error=value.get("max_abs_error"),
        reference_max_abs=float(value.get("reference_max_abs") or 0.0),
        finite=bool(value.get("finite")),
        first_s=value.get("first_s"),
        warm_s=value.get("warm_s"),
    )


def _placement(entry: Mapping[str, Any]) -> Placement:
    return Placement(
        device=str(entry["device"]),
        dtype=str(entry.get("dtype", "float32")),
        tf32=bool(entry.get("tf32")),
        stage=str(entry.get("stage", "move")),
        moved_to=entry.get("moved_to"),
        round_trip_equal=entry.get("round_trip_equal"),
        error=entry.get("error"),
        conv=_measurement(entry.get("conv")),
        matmul=_measurement(entry.get("matmul")),
    )


def _torchvision(entry: Mapping[str, Any]) -> Torchvision:
    nms = {
        device: NmsRun(bool(run.get("ok")), run.get("error"))
        for device, run in (entry.get("nms") or {}).items()
    }
    return Torchvision(
        found=bool(entry.get("found")),
        version=entry.get("version"),
        ops_loaded=bool(entry.get("ops_loaded")),
        ops_error=entry.get("ops_error"),
        cuda=entry.get("cuda"),
        nms=nms,
        ops_checked=bool(entry.get("ops_checked", True)),
    )
