"""Judging the evidence: from probe facts, platform facts and drift to checks and a verdict.

``judge(evidence)`` is a pure function, so every diagnosis is tested from recorded probe JSON
and a ``Platform`` built in the test. The order of the report is the order a user debugs in:
which Python, does torch import, does each device compute correctly, what explains a failure
(pitfalls), then torchvision and the lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from setup_tool.detect.facts import Platform
from setup_tool.doctor.broken_torch import broken_torch_detail, broken_torch_fix
from setup_tool.doctor.collective import CollectiveEvidence, collective_checks, collective_json
from setup_tool.doctor.drift import Drift
from setup_tool.doctor.facts import Placement, ProbeFacts, TorchBuild, Torchvision
from setup_tool.doctor.launch import ProbeRun
from setup_tool.doctor.package_files import PackageFiles
from setup_tool.doctor.pitfalls import REINSTALL, Diagnosis, find_pitfalls, import_fix
from setup_tool.doctor.result import Check, DoctorResult, Status
from setup_tool.interpreter import Interpreter
from setup_tool.variants import Variant

# Largest |device - reference| allowed, relative to the largest |reference|, by the arithmetic
# the device used. The reference is float64 on the CPU from the same float32 inputs.
# float32: each output sums at most 256 products; any summation order stays within ~1e-6
# relative (5e-7 measured on this project's CPU), so 1e-4 leaves two orders of magnitude for
# other kernels while still catching TF32 (~1e-3) and garbage.
# tf32 (when the probe could not turn it off, e.g. TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1): inputs
# keep a 10-bit mantissa (unit roundoff 2^-11 ≈ 5e-4), ~1e-3 relative on these sizes: 1e-2.
RELATIVE_TOLERANCE: dict[str, float] = {"float32": 1e-4, "tf32": 1e-2}

# torchvision releases pair with one torch minor: 0.(N+15) for torch 2.N
# (pytorch/vision README, "Installation": 2.0 → 0.15 … 2.9 → 0.24; 2.14 → 0.29 installed here).
TORCHVISION_MINOR_OFFSET = 15

ACCELERATORS: tuple[Variant, ...] = (Variant.cpu, Variant.cuda, Variant.mps)


@dataclass(frozen=True)
class Evidence:
    """Everything the doctor gathered. ``interpreter_error`` is (message, hint) when no Python."""

    expect: Variant
    expect_source: str
    platform: Platform | None
    interpreter: Interpreter | None
    interpreter_error: tuple[str, str | None] | None = None
    probe: ProbeRun | None = None
    drift: Drift | None = None
    torch_files: PackageFiles | None = None  # torch's conda package, checked when torch is broken
    collective: CollectiveEvidence | None = None  # the collective check, when it was planned


def judge(evidence: Evidence) -> DoctorResult:
    """The report: one check per line, in the order a user debugs in, and the verdict."""
    facts = evidence.probe.facts if evidence.probe else None
    checks, passed = _judge_checks(evidence)
    collective = evidence.collective
    return DoctorResult(
        evidence.expect,
        evidence.expect_source,
        evidence.interpreter,
        tuple(checks),
        passed,
        facts.raw if facts else None,
        collective_json(collective, facts) if collective else None,
    )


def _judge_checks(evidence: Evidence) -> tuple[list[Check], bool]:
    if evidence.interpreter is None or evidence.probe is None:
        message, hint = evidence.interpreter_error or ("no Python to check", None)
        return [Check("python", "python", Status.failed, message, hint)], False
    if evidence.probe.facts is None:
        return [_probe_failure(evidence.probe, evidence.interpreter)], False
    facts = evidence.probe.facts
    expect = evidence.expect
    checks = [_python_check(facts)]
    usable = facts.torch is not None and not torch_is_broken(facts)
    if facts.probe_error and not torch_is_broken(facts):
        checks.append(_probe_bug(facts.probe_error))
    diagnoses = find_pitfalls(expect, facts, evidence.platform) if usable else ()
    checks.append(_torch_check(evidence, facts))
    if usable:
        for accelerator in ACCELERATORS:
            causes = tuple(
                d.pitfall.title for d in diagnoses if d.pitfall.accelerator is accelerator
            )
            checks.extend(_placement_checks(accelerator, expect, facts, causes))
    checks.extend(_pitfall_check(d) for d in diagnoses)
    vision = _torchvision_check(facts, expect)
    if vision is not None:
        checks.append(vision)
    if evidence.collective is not None:
        checks.extend(collective_checks(evidence.collective, facts))
    if evidence.drift is not None:
        checks.append(drift_check(evidence.drift))
    passed = (
        usable
        and bool(facts.placements(expect.value))
        and all(
            c.status is Status.passed
            for c in checks
            if c.id.startswith(f"placement.{expect.value}")
        )
    )
    return checks, passed


def _pitfall_check(diagnosis: Diagnosis) -> Check:
    pitfall, finding = diagnosis.pitfall, diagnosis.finding
    status = Status.failed if diagnosis.blocking else Status.warned
    return Check(f"pitfall.{pitfall.id}", pitfall.title, status, finding.detail, finding.fix)


def _probe_bug(error: str) -> Check:
    return Check(
        "probe",
        "probe",
        Status.failed,
        f"the probe hit a bug and stopped early: {error}",
        "report it with the traceback from `--json` (probe.probe.traceback)",
    )


def torch_is_broken(facts: ProbeFacts) -> bool:
    """torch imports but is not a working PyTorch (a stand-in, half-installed, shadowed)."""
    torch = facts.torch
    if torch is None:
        return False
    return torch.broken or bool(facts.probe_error and facts.probe_error_origin == "torch")


def _torch_check(evidence: Evidence, facts: ProbeFacts) -> Check:
    torch = facts.torch
    if torch is None:
        error = facts.torch_error or "unknown error"
        return Check(
            "torch", "torch", Status.failed, f"import torch failed: {error}", import_fix(error)
        )
    if torch_is_broken(facts):
        return Check(
            "torch",
            "torch",
            Status.failed,
            broken_torch_detail(facts),
            broken_torch_fix(facts, evidence.drift, evidence.torch_files),
        )
    return Check("torch", "torch", Status.passed, _torch_summary(torch))


def _probe_failure(run: ProbeRun, interpreter: Interpreter) -> Check:
    where = f" during '{run.last_stage}'" if run.last_stage else ""
    detail = f"the probe in {interpreter.python} {run.failure}{where}"
    if run.stderr_tail:
        detail += "\n" + run.stderr_tail
    if run.failure and "timed out" in run.failure:
        fix = (
            "something hung (often a GPU or driver that stopped responding: run `nvidia-smi`); "
            "give a slow machine more time with --timeout"
        )
    elif run.last_stage is None:
        # It never announced a stage: not a Python at all, or one too old to run the probe.
        fix = (
            "give a Python 3.8+ interpreter: the environment's `bin/python` (--python) or the "
            "environment itself (--prefix)"
        )
    else:
        fix = (
            "the stage named above is where the process died inside native code: reinstall the "
            f"environment from its lock ({REINSTALL}); for a GPU stage, update the NVIDIA driver"
        )
    return Check("probe", "probe", Status.failed, detail, fix)


def _python_check(facts: ProbeFacts) -> Check:
    detail = f"Python {facts.python_version} ({facts.machine}) {facts.python_executable}"
    return Check("python", "python", Status.passed, detail)


def _torch_summary(torch: TorchBuild) -> str:
    parts = [torch.version]
    if torch.cuda:
        parts.append(f"CUDA {torch.cuda}")
        if torch.cudnn:
            major, rest = divmod(torch.cudnn, 10000)
            parts.append(f"cuDNN {major}.{rest // 100}.{rest % 100}")
    elif torch.hip:
        parts.append(f"ROCm {torch.hip}")
    else:
        parts.append("no CUDA")
    parts.append("MPS built" if torch.mps_built else "no MPS")
    if torch.import_seconds is not None:
        parts.append(f"imported in {torch.import_seconds:.1f} s")
    return " · ".join(parts)


def _placement_checks(
    accelerator: Variant, expect: Variant, facts: ProbeFacts, causes: tuple[str, ...]
) -> list[Check]:
    torch = facts.torch
    assert torch is not None
    runs = facts.placements(accelerator.value)
    expected = accelerator is expect
    if runs:
        checks = [_judge_placement(run, causes) for run in runs]
        if not expected:
            checks = [_soften(c) for c in checks]
        return checks
    # No device of this kind to run on: say why, for the expected one and for any the build has.
    if accelerator is Variant.cuda:
        relevant = expected or torch.cuda is not None
        why = torch.cuda_error or "torch sees no CUDA device"
    elif accelerator is Variant.mps:
        relevant = expected or torch.mps_built or facts.system == "darwin"
        why = torch.mps_error or (
            "torch.backends.mps.is_available() is False"
            if torch.mps_built
            else "this torch is built without MPS"
        )
    else:
        relevant, why = True, "the probe did not run on the CPU"
    if not relevant:
        return []
    if not expected:
        return [
            Check(
                f"placement.{accelerator.value}",
                accelerator.value,
                Status.skipped,
                f"not available: {why}",
            )
        ]
    # The pitfalls found for this accelerator carry the fix; point at them.
    fix = f"see {', '.join(causes)} below" if causes else _generic_fix(accelerator)
    return [
        Check(
            f"placement.{accelerator.value}",
            accelerator.value,
            Status.failed,
            f"not available: {why}",
            fix,
        )
    ]


def _generic_fix(accelerator: Variant) -> str:
    if accelerator is Variant.cuda:
        return (
            "check that `nvidia-smi` lists the GPU; inside a container, start it with the GPU "
            "exposed (`docker run --gpus all`)"
        )
    if accelerator is Variant.mps:
        return "run natively on an Apple Silicon Mac with macOS 14 or newer"
    return f"reinstall the environment from its lock ({REINSTALL})"


def _soften(check: Check) -> Check:
    """A failure on a device nobody asked for is a warning."""
    if check.status is not Status.failed:
        return check
    return Check(check.id, check.title, Status.warned, check.detail, check.fix)


def tolerance_for(run: Placement) -> float:
    return RELATIVE_TOLERANCE["tf32" if run.tf32 else run.dtype]


def _judge_placement(run: Placement, causes: tuple[str, ...] = ()) -> Check:
    check_id = f"placement.{run.device}"

    def failed(detail: str, fix: str) -> Check:
        return Check(check_id, run.device, Status.failed, detail, fix)

    device_fix = f"see {', '.join(causes)} below" if causes else _device_fix(run)
    if run.error:
        return failed(f"failed at {run.stage}: {run.error}", device_fix)
    if run.moved_to != run.device and not (run.device == "mps" and run.moved_to == "mps:0"):
        return failed(f"a tensor moved to {run.device} reports device {run.moved_to}", device_fix)
    if run.round_trip_equal is False:
        return failed(f"a tensor copied to {run.device} and back came back different", device_fix)
    tolerance = tolerance_for(run)
    errors = []
    for name, measured in (("conv2d", run.conv), ("matmul", run.matmul)):
        if measured is None:
            return failed(f"{name} was not measured (stopped at {run.stage})", device_fix)
        relative = measured.relative_error
        if not measured.finite or relative is None:
            return failed(f"{name} on {run.device} produced NaN or infinity", device_fix)
        if relative > tolerance:
            return failed(
                f"{name} on {run.device} differs from the float64 CPU reference by "
                f"{relative:.1e} relative (tolerance {tolerance:.0e} for "
                f"{'tf32' if run.tf32 else run.dtype})",
                device_fix,
            )
        errors.append(f"{name} {relative:.0e}")
    assert run.conv is not None and run.matmul is not None
    arithmetic = "tf32" if run.tf32 else run.dtype
    detail = (
        f"tensor moved to {run.moved_to}; {', '.join(errors)} from CPU float64 "
        f"(≤ {tolerance:.0e}, {arithmetic}); warm conv2d {_ms(run.conv.warm_s)}, matmul "
        f"{_ms(run.matmul.warm_s)} (first conv2d {_ms(run.conv.first_s)})"
    )
    return Check(check_id, run.device, Status.passed, detail)


def _device_fix(run: Placement) -> str:
    if run.accelerator == "cuda":
        if run.error and re.search(r"out of memory", run.error):
            return "another process holds the GPU's memory: see `nvidia-smi`, then retry"
        return (
            "with no known pitfall found, errors or wrong results point at the driver or the "
            "GPU: update the NVIDIA driver and check `nvidia-smi -q` for ECC / Xid errors"
        )
    if run.accelerator == "mps":
        return (
            "MPS has no kernel for some operations: set PYTORCH_ENABLE_MPS_FALLBACK=1 to run "
            "them on the CPU, and update macOS and torch"
        )
    return f"the CPU build of torch computes wrongly: reinstall from its lock ({REINSTALL})"


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.1f} ms"


def expected_torchvision(torch_version: str) -> str | None:
    """The torchvision minor series that pairs with a torch 2.x release ("0.29" for 2.14)."""
    match = re.match(r"2\.(\d+)", torch_version)
    return f"0.{int(match.group(1)) + TORCHVISION_MINOR_OFFSET}" if match else None


def _torchvision_check(facts: ProbeFacts, expect: Variant) -> Check | None:
    torch, vision = facts.torch, facts.torchvision
    torch_works = torch is not None and not torch_is_broken(facts)
    if vision is None or not vision.found:
        # Absent: said only when torch works (beside a broken torch it is noise), and the
        # probe never tries the ops of a torchvision it did not find (ops_checked stays False).
        return _torchvision_absent(torch) if torch is not None and torch_works else None
    if torch is None or not torch_works or not vision.ops_checked:
        why = (
            "the probe stopped early (see probe above)"
            if torch_works
            else ("torch does not work (see torch above)")
        )
        return Check(
            "torchvision",
            "torchvision",
            Status.skipped,
            f"torchvision {vision.version or '(unknown version)'} is installed; not checked: "
            + why,
        )
    return _judge_torchvision(torch, vision, expect)


def _torchvision_absent(torch: TorchBuild) -> Check:
    # Optional: setup-tool's benchmark reads MNIST without it (bench/data.py's IdxMnist),
    # and an environment whose lock has it and lost it fails the lock check.
    pair = expected_torchvision(torch.version)
    built_for = f"; torchvision {pair}.x is the one built for torch {torch.version}" if pair else ""
    return Check(
        "torchvision",
        "torchvision",
        Status.skipped,
        f"torchvision is not installed; nothing to check (it is optional{built_for})",
    )


def _judge_torchvision(torch: TorchBuild, vision: Torchvision, expect: Variant) -> Check:
    pair = expected_torchvision(torch.version)
    pair_text = f"torchvision {pair}.x" if pair else "the torchvision built for it"
    reinstall = f"install {pair_text}, the one built for torch {torch.version}: {REINSTALL}"
    version = vision.version or "(unknown version)"
    if not vision.ops_loaded:
        return Check(
            "torchvision",
            "torchvision",
            Status.failed,
            f"torchvision {version}'s compiled ops do not load into torch {torch.version} "
            f"(`import torchvision` then fails with 'operator torchvision::nms does not "
            f"exist'): {vision.ops_error}",
            reinstall,
        )
    if vision.cuda and vision.cuda > 0 and torch.cuda:
        vision_major = vision.cuda // 1000
        if str(vision_major) != torch.cuda.split(".")[0]:
            return Check(
                "torchvision",
                "torchvision",
                Status.failed,
                f"torchvision {version} is built for CUDA {vision_major}, torch {torch.version} "
                f"for CUDA {torch.cuda}",
                reinstall,
            )
    broken = {d: r for d, r in vision.nms.items() if not r.ok}
    expected_broken = {d: r for d, r in broken.items() if d.split(":")[0] == expect.value}
    if broken:
        device, run = next(iter(expected_broken.items() or broken.items()))
        status = Status.failed if expected_broken or device == "cpu" else Status.warned
        return Check(
            "torchvision",
            "torchvision",
            status,
            f"torchvision {version}: nms on {device} failed: {run.error or 'wrong boxes kept'}",
            reinstall,
        )
    ran = ", ".join(vision.nms) or "no device"
    if pair and vision.version and not vision.version.startswith(pair + "."):
        return Check(
            "torchvision",
            "torchvision",
            Status.warned,
            f"torchvision {version} is not the release paired with torch {torch.version} "
            f"({pair}.x), though its ops load and nms runs on {ran}",
            reinstall,
        )
    return Check(
        "torchvision", "torchvision", Status.passed, f"{version} · ops load · nms runs on {ran}"
    )


DRIFT_SHOWN = 4


def drift_check(drift: Drift) -> Check:
    lock = drift.lockfile.name if drift.lockfile else "lock"
    if drift.state == "skipped":
        return Check("lock", "lock", Status.skipped, drift.note)
    if drift.state == "unreadable":
        return Check(
            "lock",
            "lock",
            Status.warned,
            drift.note,
            "lock and install again: `setup-tool env`",
        )
    pip = f"; {drift.pip_skipped} pip package(s) not compared" if drift.pip_skipped else ""
    if drift.state == "clean":
        return Check(
            "lock",
            "lock",
            Status.passed,
            f"{drift.compared} packages match {lock} ({drift.platform}){pip}",
        )
    parts = []
    if drift.changed:
        shown = ", ".join(
            f"{c.installed} (locked {str(c.locked).removeprefix(c.locked.name + ' ')})"
            for c in drift.changed[:DRIFT_SHOWN]
        )
        parts.append(f"{len(drift.changed)} changed: {shown}{_more(drift.changed)}")
    if drift.missing:
        shown = ", ".join(str(p) for p in drift.missing[:DRIFT_SHOWN])
        parts.append(f"{len(drift.missing)} missing: {shown}{_more(drift.missing)}")
    if drift.extra:
        shown = ", ".join(str(p) for p in drift.extra[:DRIFT_SHOWN])
        parts.append(f"{len(drift.extra)} not in the lock: {shown}{_more(drift.extra)}")
    only_extra = not drift.changed and not drift.missing
    fix = f"reinstall from the lock, which swaps only what differs: {REINSTALL}"
    if only_extra:
        fix = (
            "packages were added outside the lock: add them to envs/*.yml and re-lock "
            f"(`setup-tool lock`), or remove them with {REINSTALL}"
        )
    return Check(
        "lock",
        "lock",
        Status.warned if only_extra else Status.failed,
        f"the environment differs from {lock} ({drift.platform}): " + "; ".join(parts) + pip,
        fix,
    )


def _more(items: tuple[object, ...]) -> str:
    return f" and {len(items) - DRIFT_SHOWN} more" if len(items) > DRIFT_SHOWN else ""
