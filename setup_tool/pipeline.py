"""``setup-tool env``'s pipeline: detect → lock if missing or stale → install → doctor.

Each step returns a frozen result and tells a ``PipelineEvents`` listener when it starts and
ends; the listener (the CLI) renders, the pipeline never prints. Every step is itself a no-op
when nothing changed, so a rerun is quick (the doctor's ``import torch`` dominates it). The
first failing step raises its ``SetupToolError`` and the run ends there; a doctor that finds a
problem is a result (``EnvResult.exit_code``), not an error.

The CUDA a cuda environment is built for has one source of truth: the lock. ``LockStep.cuda``
is the ``cuda-version`` package the lock holds for this platform, the same one the install's
machine check compares with the driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from setup_tool.errors import ExitCode, UnsupportedPlatform
from setup_tool.install.progress import Progress
from setup_tool.variants import Variant, VariantChoice

if TYPE_CHECKING:
    from setup_tool.detect import Detection
    from setup_tool.doctor import DoctorResult
    from setup_tool.install import InstallResult
    from setup_tool.lock import CheckResult, LockResult
    from setup_tool.lock.progress import LockProgress


@dataclass(frozen=True)
class EnvRequest:
    """What ``setup-tool env`` was asked for. ``channels``, ``pip_indexes`` and ``torch_from``
    mean what they mean for ``setup_tool.lock.lock_variants``; the check and the lock get them."""

    root: Path
    variant: VariantChoice | None = None
    channels: tuple[str, ...] | None = None
    pip_indexes: tuple[str, ...] | None = None
    torch_from: str | None = None  # "conda-forge" or "wheels"; None: the lock's, else conda-forge
    prefix: Path | None = None
    doctor: bool = True
    environ: Mapping[str, str] | None = None  # None: os.environ


@dataclass(frozen=True)
class DetectStep:
    detection: Detection
    variant: Variant  # the variant chosen (detection, SETUP_TOOL_VARIANT or --variant)


@dataclass(frozen=True)
class LockStep:
    """The lock check, and the lock made when the check said it was missing or stale."""

    lockfile: Path
    check: CheckResult
    locked: LockResult | None  # None: the lock was up to date, nothing was solved
    cuda: str | None  # the lock's cuda-version for this platform; None for a CPU/MPS lock

    @property
    def relocked(self) -> bool:
        return self.locked is not None


@dataclass(frozen=True)
class EnvResult:
    """One result per step; ``doctor`` is None when the doctor was not asked for."""

    detect: DetectStep
    lock: LockStep
    install: InstallResult
    doctor: DoctorResult | None

    @property
    def exit_code(self) -> ExitCode:
        return self.doctor.exit_code if self.doctor is not None else ExitCode.OK


class PipelineEvents:
    """What the pipeline reports while it runs. The base does nothing; the CLI renders.

    ``lock_progress`` and ``install_progress`` hand the lock and install steps their own
    progress reporters, so their per-platform and per-package lines come through too.
    """

    def detected(self, step: DetectStep) -> None:
        pass

    def locking(self, check: CheckResult) -> None:
        """The lock is missing or stale: a solve (which needs the channel) starts."""

    def locked(self, step: LockStep) -> None:
        pass

    def lock_progress(self) -> LockProgress | None:
        return None

    def install_progress(self) -> Progress:
        return Progress()

    def installed(self, result: InstallResult) -> None:
        pass

    def doctor_started(self) -> None:
        pass

    def doctor_finished(self, result: DoctorResult) -> None:
        pass


def run_env(request: EnvRequest, events: PipelineEvents | None = None) -> EnvResult:
    """Detect, lock if needed, install, and (unless ``request.doctor`` is False) check."""
    events = events or PipelineEvents()
    environ = os.environ if request.environ is None else request.environ
    detected = detect_step(request.variant, environ)
    events.detected(detected)
    lock = lock_step(request, detected, environ, events)
    events.locked(lock)
    installed = install_step(request, detected.detection, lock.lockfile, environ, events)
    events.installed(installed)
    doctor = None
    if request.doctor:
        events.doctor_started()
        doctor = doctor_step(request.root, detected.variant, installed.prefix, environ)
        events.doctor_finished(doctor)
    return EnvResult(detected, lock, installed, doctor)


def detect_step(variant: VariantChoice | None, environ: Mapping[str, str]) -> DetectStep:
    """This machine's target; ``UnsupportedPlatform`` when no variant fits it."""
    from setup_tool.detect import detect, overrides_from

    detection = detect(overrides_from(variant, environ), environ)
    target = detection.target
    if target.variant is None:
        raise UnsupportedPlatform(
            f"no variant supports this machine: {target.reason}",
            "`setup-tool detect --sources` shows what was found; --variant forces one",
        )
    return DetectStep(detection, target.variant)


def lock_step(
    request: EnvRequest,
    detected: DetectStep,
    environ: Mapping[str, str],
    events: PipelineEvents,
) -> LockStep:
    """Check the variant's lock against its spec; solve and write it only when it is not
    up to date."""
    from setup_tool.lock import check_lock, lock_variant

    variant = detected.variant
    check = check_lock(
        request.root,
        variant,
        channels=request.channels,
        environ=environ,
        pip_indexes=request.pip_indexes,
        torch_from=request.torch_from,
    )
    locked = None
    if not check.up_to_date:
        events.locking(check)
        locked = lock_variant(
            request.root,
            variant,
            channels=request.channels,
            environ=environ,
            progress=events.lock_progress(),
            pip_indexes=request.pip_indexes,
            torch_from=request.torch_from,
        )
    subdir = detected.detection.target.subdir
    return LockStep(check.path, check, locked, _locked_cuda(check.path, subdir, locked))


def _locked_cuda(lockfile: Path, platform: str, locked: LockResult | None) -> str | None:
    """The ``cuda-version`` the lock holds for ``platform``: from the lock just made, else read
    from the file (a lock the install will refuse to read says so itself)."""
    if locked is not None:
        for platform_lock in locked.platforms:
            if platform_lock.platform == platform:
                return platform_lock.cuda_version
        return None
    from setup_tool.lock.condalock import read_lockfile

    try:
        lock = read_lockfile(lockfile)
    except Exception:  # unreadable: the install step reports it with its own message
        return None
    return next(
        (p.version for p in lock.package if p.platform == platform and p.name == "cuda-version"),
        None,
    )


def install_step(
    request: EnvRequest,
    detection: Detection,
    lockfile: Path,
    environ: Mapping[str, str],
    events: PipelineEvents,
) -> InstallResult:
    """Install the lock into the prefix (a no-op when it is already installed)."""
    from setup_tool.install import install
    from setup_tool.install.request import install_request

    install_args = install_request(
        detection, lockfile=lockfile, prefix=request.prefix, root=request.root, environ=environ
    )
    return install(install_args, events.install_progress())


def doctor_step(
    root: Path, variant: Variant, prefix: Path, environ: Mapping[str, str]
) -> DoctorResult:
    """The doctor's placement check inside the installed environment, expecting ``variant``."""
    from setup_tool.doctor import run_doctor

    return run_doctor(
        python=None,
        prefix=prefix,
        expect=VariantChoice(variant.value),
        root=root,
        environ=environ,
    )
