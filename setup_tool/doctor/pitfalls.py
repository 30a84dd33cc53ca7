"""Known ways an accelerator fails with PyTorch: a table of pitfall → check → fix.

Each ``Pitfall`` names the accelerator it breaks and a pure function that looks at the probe's
facts (what the target interpreter saw) and this machine's ``Platform`` (what setup-tool
detected) and returns a ``Finding`` (what is wrong, and the fix) or None. ``find_pitfalls``
runs the table; a finding for the expected accelerator is a failure, for another a warning.
Each fact's public source is in a comment beside the pitfall that uses it; ``docs/facts.md``
collects them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from setup_tool.cuda_compat import (
    MINOR_COMPAT_LIMITS,
    RULE_FULL_SUPPORT,
    RULE_MINOR_COMPAT,
    RULE_NO_DRIVER,
    RULE_UNREADABLE,
    check,
    min_driver_for,
    parse_cuda,
)
from setup_tool.detect.facts import Platform
from setup_tool.doctor.facts import ProbeFacts
from setup_tool.variants import (
    CONDA_FORGE_CUDA_BUILDS,
    CUDA_BUILD_MIN_COMPUTE_CAPABILITY,
    MPS_MIN_MACOS,
    Variant,
)

# How the fixes name setup-tool's own commands.
ENV_FOR = "`setup-tool env --variant {variant}`"
REINSTALL = "`setup-tool install`"


@dataclass(frozen=True)
class Context:
    expect: Variant
    facts: ProbeFacts
    platform: Platform | None

    @property
    def driver_version(self) -> str | None:
        nvidia = self.platform.nvidia if self.platform else None
        return self.facts.driver_version or (nvidia.driver_version if nvidia else None)

    @property
    def driver_cuda(self) -> str | None:
        nvidia = self.platform.nvidia if self.platform else None
        return self.facts.driver_cuda or (nvidia.cuda_version if nvidia else None)

    @property
    def driver_gpus(self) -> int | None:
        """GPUs the driver reports (NVML ignores CUDA_VISIBLE_DEVICES), when known."""
        nvidia = self.platform.nvidia if self.platform else None
        return len(nvidia.gpus) if nvidia and nvidia.gpus else None

    @property
    def has_nvidia_driver(self) -> bool:
        return self.driver_version is not None or (
            self.platform is not None and self.platform.nvidia is not None
        )

    @property
    def rosetta(self) -> bool:
        facts = self.facts
        if facts.system != "darwin":
            return False
        if facts.translated:
            return True
        apple_silicon = self.platform is not None and self.platform.apple_silicon
        return facts.machine == "x86_64" and bool(apple_silicon)

    @property
    def macos_version(self) -> str | None:
        # sysctl's answer (detect) first: a Python built against an old SDK reads 10.16 from
        # platform.mac_ver() on any macOS from 11 on.
        if self.platform is not None and self.platform.macos_version:
            return self.platform.macos_version
        return self.facts.mac_ver if self.facts.mac_ver != "10.16" else None


@dataclass(frozen=True)
class Finding:
    detail: str
    fix: str
    blocking: bool = True  # False: only a warning, even for the expected accelerator


@dataclass(frozen=True)
class Pitfall:
    id: str
    title: str
    accelerator: Variant
    find: Callable[[Context], Finding | None]
    only_when_expected: bool = False  # irrelevant unless this accelerator is the one expected


# --- CUDA ---------------------------------------------------------------------------------


def _cpu_only_torch(ctx: Context) -> Finding | None:
    # torch.version.cuda is None on CPU-only builds, and they raise "Torch not compiled with
    # CUDA enabled" (PyTorch documentation, torch.version / torch.cuda).
    torch = ctx.facts.torch
    if torch is None or torch.cuda or torch.hip or not ctx.has_nvidia_driver:
        return None
    gpus = f" and {ctx.driver_gpus} GPU(s)" if ctx.driver_gpus else ""
    return Finding(
        f"torch {torch.version} is built without CUDA (torch.version.cuda is None), but this "
        f"machine has NVIDIA driver {ctx.driver_version or '(version unknown)'}{gpus}",
        f"install the cuda variant: {ENV_FOR.format(variant='cuda')} (conda-forge's "
        f"`pytorch=*=cuda*` build)",
    )


def _no_nvidia_driver(ctx: Context) -> Finding | None:
    # The driver a CUDA build needs: setup_tool.cuda_compat's one rule (NVIDIA, "CUDA
    # Compatibility", minor-version compatibility), as detect, lock and install apply it.
    torch = ctx.facts.torch
    if ctx.has_nvidia_driver or (torch is not None and torch.cuda_available):
        return None
    if ctx.facts.system == "darwin":
        return Finding(
            "macOS has no CUDA: PyTorch uses the Apple GPU through MPS instead",
            "check the Apple GPU: `setup-tool doctor --expect mps` (or `--expect auto`)",
        )
    why = ctx.platform.unknown.get("nvidia") if ctx.platform else None
    needed = torch.cuda if torch is not None and torch.cuda else CONDA_FORGE_CUDA_BUILDS[-1]
    return Finding(
        why or "no NVIDIA driver found",
        f"install {_driver_for(needed)} and check that `nvidia-smi` lists the GPU; on a machine "
        f"without an NVIDIA GPU, check the CPU instead: `setup-tool doctor --expect cpu`",
    )


def _driver_too_old(ctx: Context) -> Finding | None:
    # Whether torch's CUDA build runs on this driver is setup_tool.cuda_compat.check, the rule
    # detect, lock and install use too; torch's own "driver ... is too old" error overrides it
    # (the driver's reported CUDA can be wrong, e.g. a CONDA_OVERRIDE_CUDA or a stale reading).
    torch = ctx.facts.torch
    if torch is None or not torch.cuda:
        return None
    said_too_old = bool(torch.cuda_error and "too old" in torch.cuda_error)
    fit = check(torch.cuda, ctx.driver_cuda, driver_version=ctx.driver_version)
    if fit.rule in (RULE_NO_DRIVER, RULE_UNREADABLE) and not said_too_old:
        return None  # no driver is no-nvidia-driver's finding; an unreadable version, nobody's
    if fit.rule == RULE_FULL_SUPPORT and not said_too_old:
        return None
    driver = f"driver {ctx.driver_version}" if ctx.driver_version else "driver"
    detail = (
        f"the {driver} supports CUDA {ctx.driver_cuda or '(unknown)'}, "
        f"torch {torch.version} needs CUDA {torch.cuda}"
    )
    if fit.rule == RULE_MINOR_COMPAT and not said_too_old:
        return Finding(
            f"{detail}: it runs through CUDA minor-version compatibility, but "
            f"{MINOR_COMPAT_LIMITS}",
            f"update the NVIDIA driver to {fit.minimum_driver or 'a newer one'} or newer to "
            f"support CUDA {torch.cuda} fully",
            blocking=False,
        )
    return Finding(detail, f"update to {_driver_for(torch.cuda)}{_relock(ctx)}")


def _driver_for(cuda: str) -> str:
    """ "the NVIDIA driver 580 or newer (CUDA 13.x; 580.65.06 or newer supports 13.0 fully)"."""
    minimum = check(cuda, None).minimum_driver  # the major's minimum, per cuda_compat
    full = min_driver_for(cuda)
    parsed = parse_cuda(cuda)
    family = f"CUDA {parsed[0]}.x" if parsed else f"CUDA {cuda}"
    fully = f"; {full} or newer supports CUDA {cuda} fully" if full and full != minimum else ""
    return (
        f"the NVIDIA driver {minimum} or newer ({family}{fully})"
        if minimum
        else (f"an NVIDIA driver for CUDA {cuda}")
    )


def _relock(ctx: Context) -> str:
    """The newest conda-forge CUDA build this driver runs (the same rule), as a second fix."""
    runnable = [
        build
        for build in CONDA_FORGE_CUDA_BUILDS
        if check(build, ctx.driver_cuda, driver_version=ctx.driver_version).fits
    ]
    if not runnable:
        return ""
    return (
        f", or install the CUDA {runnable[-1]} build this driver runs: "
        f"{ENV_FOR.format(variant='cuda')} picks it from the driver"
    )


def _capability_value(capability: str) -> int | None:
    try:
        major, minor = capability.split(".")
        return int(major) * 10 + int(minor)
    except ValueError:
        return None


def arch_covers(arch_list: tuple[str, ...], capability: str) -> bool:
    """Whether torch's ``get_arch_list()`` has code that runs on a GPU of ``capability``.

    ``sm_XY`` cubins run on the same major version at minor ≥ Y; ``sm_XYa`` only on X.Y
    exactly; ``compute_XY`` PTX is JIT-compiled for any capability ≥ X.Y (NVIDIA CUDA C++
    Programming Guide, "Binary compatibility" and "PTX compatibility"; torch.cuda
    ``_check_capability`` applies the same rules).
    """
    device = _capability_value(capability)
    if device is None:
        return True  # unknown: do not claim a problem
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        digits = number.rstrip("af")
        if not digits.isdigit():
            continue
        code = int(digits)
        if kind == "sm" and number.endswith("a"):
            if code == device:
                return True
        elif kind == "sm":
            if code // 10 == device // 10 and code <= device:
                return True
        elif kind == "compute" and code <= device:
            return True
    return False


def _gpu_arch_missing(ctx: Context) -> Finding | None:
    torch = ctx.facts.torch
    if torch is None or not torch.cuda:
        return None
    gpus: list[tuple[int, str | None, str | None]] = [
        (d.index, d.name, d.capability) for d in ctx.facts.devices if d.capability
    ]
    if not gpus and ctx.platform is not None and ctx.platform.nvidia is not None:
        gpus = [(g.index, g.name, g.compute_capability) for g in ctx.platform.nvidia.gpus]
    missing = [
        (index, name, cap)
        for index, name, cap in gpus
        if cap and torch.arch_list and not arch_covers(torch.arch_list, cap)
    ]
    no_kernel = [
        p for p in ctx.facts.placements("cuda") if p.error and "no kernel image" in p.error
    ]
    if not missing and not no_kernel:
        return None
    if not missing:
        devices = ", ".join(p.device for p in no_kernel)
        return Finding(
            f"{devices}: no kernel image is available for this GPU in torch {torch.version}",
            f"install a PyTorch build with this GPU's architecture: {REINSTALL} from a lock made "
            f"for this machine ({ENV_FOR.format(variant='cuda')})",
        )
    index, name, cap = missing[0]
    value = _capability_value(cap) or 0
    archs = " ".join(torch.arch_list)
    detail = (
        f"GPU {index} ({name}, compute capability {cap}) is not among torch {torch.version}'s "
        f"architectures ({archs}): kernels fail with 'no kernel image is available'"
    )
    fitting = [
        build
        for build in reversed(CONDA_FORGE_CUDA_BUILDS)
        if Version(cap) >= CUDA_BUILD_MIN_COMPUTE_CAPABILITY[build]
    ]
    built = [_arch_number(a) for a in torch.arch_list]
    if built and value > max(built):
        fix = (
            f"this GPU is newer than torch {torch.version} knows: re-lock for a newer PyTorch "
            f"(`setup-tool lock --variant cuda`) and reinstall ({REINSTALL})"
        )
    elif fitting:
        fix = (
            f"conda-forge's CUDA {fitting[0]} build still covers compute capability {cap}: "
            f"`CONDA_OVERRIDE_CUDA={fitting[0]} setup-tool env --variant cuda`"
        )
    else:
        fix = (
            f"no conda-forge CUDA build of PyTorch supports compute capability {cap}; use the "
            f"CPU: {ENV_FOR.format(variant='cpu')}"
        )
    return Finding(detail, fix)


def _arch_number(arch: str) -> int:
    digits = arch.partition("_")[2].rstrip("af")
    return int(digits) if digits.isdigit() else 0


def _cuda_visible_devices(ctx: Context) -> Finding | None:
    # CUDA_VISIBLE_DEVICES hides the GPUs it does not list from CUDA (NVIDIA, "CUDA C++
    # Programming Guide", "CUDA Environment Variables"); NVML, which detect reads, ignores it.
    value = ctx.facts.environment.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    torch = ctx.facts.torch
    visible = torch.cuda_device_count if torch is not None else 0
    total = ctx.driver_gpus
    everything = ", ".join(str(i) for i in range(total)) if total else "0"
    fix = (
        "`unset CUDA_VISIBLE_DEVICES`, or list the GPUs to use, e.g. "
        f"`export CUDA_VISIBLE_DEVICES={everything.replace(', ', ',')}`"
    )
    if visible == 0 and ctx.has_nvidia_driver:
        return Finding(f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU from torch", fix)
    if total is not None and visible < total:
        # Often deliberate (sharing a machine): worth saying, not worth failing.
        return Finding(
            f"CUDA_VISIBLE_DEVICES={value!r} shows torch {visible} of the driver's {total} GPUs",
            fix,
            blocking=False,
        )
    return None


# --- MPS ----------------------------------------------------------------------------------


def _rosetta(ctx: Context) -> Finding | None:
    # An x86_64 Python under Rosetta gets no MPS (pytorch/pytorch#146236); sysctl
    # sysctl.proc_translated is 1 there (Apple, "About the Rosetta translation environment").
    if not ctx.rosetta:
        return None
    return Finding(
        f"this Python ({ctx.facts.python_executable}) is x86_64 and runs under Rosetta 2 on "
        f"Apple Silicon: torch gets no MPS there, and the CPU runs translated",
        "use an arm64 Python: open a native shell (`arch -arm64 /bin/zsh`), then "
        f"{ENV_FOR.format(variant='mps')} installs an osx-arm64 environment; "
        "`python -c 'import platform; print(platform.machine())'` must print arm64",
    )


def _macos_too_old(ctx: Context) -> Finding | None:
    # PyTorch 2.10 and later need macOS 14.0 for MPS (pytorch/pytorch#177819).
    version = _version(ctx.macos_version)
    if ctx.facts.system != "darwin" or version is None or version >= Version(MPS_MIN_MACOS):
        return None
    return Finding(
        f"macOS {ctx.macos_version} is older than {MPS_MIN_MACOS}, which PyTorch 2.10 and "
        f"later need for MPS",
        f"upgrade macOS to {MPS_MIN_MACOS} (Sonoma) or newer; until then use the CPU build: "
        f"{ENV_FOR.format(variant='cpu')}",
    )


def _mps_not_built(ctx: Context) -> Finding | None:
    # is_built() against is_available() (PyTorch documentation, "MPS backend").
    torch = ctx.facts.torch
    if ctx.facts.system != "darwin" or torch is None or torch.mps_built or ctx.rosetta:
        return None
    return Finding(
        f"torch {torch.version} was built without MPS (torch.backends.mps.is_built() is False)",
        f"install the mps variant: {ENV_FOR.format(variant='mps')}",
    )


def _mps_unavailable(ctx: Context) -> Finding | None:
    torch = ctx.facts.torch
    if torch is None or not torch.mps_built or torch.mps_available:
        return None
    if ctx.rosetta or _macos_too_old(ctx) is not None:
        return None  # explained by those pitfalls, with their own fixes
    said = f": {torch.mps_error}" if torch.mps_error else ""
    return Finding(
        f"torch {torch.version} has MPS built in but it is not available{said}",
        f"MPS needs Apple Silicon, macOS {MPS_MIN_MACOS} or newer and a process that can reach "
        "the GPU (not a VM or a container without Metal); run from a native macOS terminal",
    )


def _mps_not_a_mac(ctx: Context) -> Finding | None:
    if ctx.facts.system == "darwin":
        return None
    return Finding(
        f"MPS (the Apple GPU through Metal) exists only on Apple Silicon Macs; this is "
        f"{ctx.facts.system} {ctx.facts.machine}",
        "check this machine's own accelerator: `setup-tool doctor --expect auto`",
    )


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall("cpu-only-torch", "CPU-only torch", Variant.cuda, _cpu_only_torch),
    Pitfall("no-nvidia-driver", "NVIDIA driver", Variant.cuda, _no_nvidia_driver, True),
    Pitfall("driver-too-old", "driver too old", Variant.cuda, _driver_too_old),
    Pitfall("gpu-arch-missing", "GPU architecture", Variant.cuda, _gpu_arch_missing),
    Pitfall("cuda-visible-devices", "CUDA_VISIBLE_DEVICES", Variant.cuda, _cuda_visible_devices),
    Pitfall("rosetta", "Rosetta", Variant.mps, _rosetta),
    Pitfall("macos-too-old", "macOS version", Variant.mps, _macos_too_old, True),
    Pitfall("mps-not-built", "MPS not built", Variant.mps, _mps_not_built, True),
    Pitfall("mps-unavailable", "MPS unavailable", Variant.mps, _mps_unavailable, True),
    Pitfall("mps-not-a-mac", "not a Mac", Variant.mps, _mps_not_a_mac, True),
)


@dataclass(frozen=True)
class Diagnosis:
    pitfall: Pitfall
    finding: Finding
    blocking: bool  # a failure (the expected accelerator's, and blocking), else a warning


def find_pitfalls(
    expect: Variant, facts: ProbeFacts, platform: Platform | None
) -> tuple[Diagnosis, ...]:
    """Every pitfall present, in table order."""
    ctx = Context(expect, facts, platform)
    found = []
    for pitfall in PITFALLS:
        if pitfall.only_when_expected and pitfall.accelerator is not expect:
            continue
        finding = pitfall.find(ctx)
        if finding is not None:
            blocking = pitfall.accelerator is expect and finding.blocking
            found.append(Diagnosis(pitfall, finding, blocking))
    return tuple(found)


# --- torch that does not import -----------------------------------------------------------

# The error text of a failed ``import torch`` → the fix. First match wins.
IMPORT_FIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"No module named 'torch'"),
        "this Python has no torch: point --python / --prefix at the environment, or create "
        "it with `setup-tool env`",
    ),
    (
        re.compile(r"cannot open shared object file|Library not loaded|DLL load failed"),
        f"a library torch links is missing from the environment: reinstall it from its lock "
        f"({REINSTALL})",
    ),
    (
        re.compile(r"undefined symbol|Symbol not found"),
        "torch's libraries come from different builds (often pip torch over conda torch, or "
        f"the reverse): reinstall the environment from its lock ({REINSTALL})",
    ),
    (
        re.compile(r"NumPy 1\.x cannot be run in\s+NumPy 2|numpy", re.IGNORECASE),
        "numpy does not match the numpy torch was built against: reinstall the environment "
        f"from its lock ({REINSTALL})",
    ),
)
IMPORT_FIX_DEFAULT = f"reinstall the environment from its lock ({REINSTALL})"


def import_fix(error: str) -> str:
    for pattern, fix in IMPORT_FIXES:
        if pattern.search(error):
            return fix
    return IMPORT_FIX_DEFAULT


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None
