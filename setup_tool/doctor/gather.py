"""``run_doctor``: gather the evidence (detect, resolve the interpreter, probe, drift), judge it.

The slow parts overlap: the probe (seconds, mostly ``import torch`` in the target interpreter)
runs in a worker thread while detection and the lock comparison (conda-lock's import alone is
about a second) run beside it. Only the default interpreter has to wait for detection, because
it is the detected variant's environment. Each step is announced to a ``DoctorProgress``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from setup_tool.detect import Detection, Overrides, detect, overrides_from
from setup_tool.doctor.broken_torch import TORCH_INIT
from setup_tool.doctor.checks import Evidence, judge, torch_is_broken
from setup_tool.doctor.collective import CollectiveEvidence, CollectiveOptions, plan_collective
from setup_tool.doctor.collective_run import run_collective
from setup_tool.doctor.drift import Drift, check_drift
from setup_tool.doctor.launch import DEFAULT_PROBE_TIMEOUT_S, ProbeRun, run_probe
from setup_tool.doctor.package_files import PackageFiles, conda_prefix_of, package_owning
from setup_tool.doctor.progress import DoctorProgress
from setup_tool.doctor.result import DoctorResult
from setup_tool.doctor.topology import read_topology
from setup_tool.errors import UsageError
from setup_tool.interpreter import Interpreter, resolve_interpreter
from setup_tool.runner import Runner, run_command
from setup_tool.variants import Variant, VariantChoice

Detector = Callable[[Overrides, Mapping[str, str]], Detection]


@dataclass(frozen=True)
class _Gathered:
    detection: Detection
    interpreter: Interpreter | None
    interpreter_error: tuple[str, str | None] | None
    probe: ProbeRun | None
    drift: Drift | None


def run_doctor(
    *,
    python: Path | None,
    prefix: Path | None,
    expect: VariantChoice | None,
    root: Path,
    environ: Mapping[str, str],
    runner: Runner = run_command,
    timeout: float = DEFAULT_PROBE_TIMEOUT_S,
    detector: Detector = detect,
    progress: DoctorProgress | None = None,
    collective: CollectiveOptions | None = None,
) -> DoctorResult:
    """Check the target interpreter's torch against the expected accelerator.

    ``timeout`` bounds the probe, and the collective check's whole torchrun run again.
    """
    if python is not None and prefix is not None:
        raise UsageError("--python and --prefix name the same thing; give one of them")
    progress = progress or DoctorProgress()
    # --expect > SETUP_TOOL_VARIANT > detection, as for --variant everywhere else.
    overrides = overrides_from(expect, environ, flag_name="--expect")
    found = _gather(python, prefix, root, overrides, environ, runner, timeout, detector, progress)
    expect_variant, source = _expected(found.detection)
    evidence = Evidence(
        expect=expect_variant,
        expect_source=source,
        platform=found.detection.platform,
        interpreter=found.interpreter,
        interpreter_error=found.interpreter_error,
        probe=found.probe,
        drift=found.drift,
    )
    evidence = replace(evidence, torch_files=_torch_files(evidence, progress))
    options = collective or CollectiveOptions()
    planned = _collective(evidence, options, environ, runner, timeout, progress)
    evidence = replace(evidence, collective=planned)
    progress.done()
    return judge(evidence)


def _collective(
    evidence: Evidence,
    options: CollectiveOptions,
    environ: Mapping[str, str],
    runner: Runner,
    wall_timeout: float,
    progress: DoctorProgress,
) -> CollectiveEvidence | None:
    """Plan the collective check from the probe's verdict, and run it when it is planned."""
    facts = evidence.probe.facts if evidence.probe else None
    placement_ok = judge(evidence).accelerator_passed
    planned = plan_collective(options, evidence.expect, facts, placement_ok)
    if planned is None or planned.plan is None or evidence.interpreter is None:
        return planned
    plan = planned.plan
    ranks = f"{plan.world_size} {plan.backend} rank{'s' if plan.world_size > 1 else ''}"
    progress.step(f"collective check: {ranks} through torchrun (imports torch in each)")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="doctor-topology") as pool:
        topology_job = pool.submit(read_topology, runner) if plan.backend == "nccl" else None
        run = run_collective(
            evidence.interpreter.python,
            backend=plan.backend,
            world_size=plan.world_size,
            timeout_s=options.timeout_s,
            wall_timeout_s=wall_timeout,
            environ=environ,
            runner=runner,
        )
        topology = topology_job.result() if topology_job else None
    return replace(planned, run=run, topology=topology)


def _gather(
    python: Path | None,
    prefix: Path | None,
    root: Path,
    overrides: Overrides,
    environ: Mapping[str, str],
    runner: Runner,
    timeout: float,
    detector: Detector,
    progress: DoctorProgress,
) -> _Gathered:
    """Detection, the probe and the lock comparison, overlapped in threads."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="doctor") as pool:
        detection_job = pool.submit(detector, overrides, environ)
        explicit = python is not None or prefix is not None
        variant = None if explicit else detection_job.result().target.variant
        interpreter, interpreter_error = _resolve(python, prefix, root, variant)
        probe_job: Future[ProbeRun] | None = None
        drift_job: Future[Drift] | None = None
        if interpreter is not None:
            progress.step(f"probing {interpreter.python} (imports torch)")
            probe_job = pool.submit(run_probe, interpreter.python, runner=runner, timeout=timeout)
            if interpreter.prefix is not None:
                drift_job = pool.submit(check_drift, interpreter.prefix, root)
        detection = detection_job.result()
        probe = probe_job.result() if probe_job else None
        drift = drift_job.result() if drift_job else None
    if drift is None and interpreter is not None:
        drift = check_drift(_prefix_from_probe(probe), root, detection.platform.subdir)
    return _Gathered(detection, interpreter, interpreter_error, probe, drift)


def _torch_files(evidence: Evidence, progress: DoctorProgress) -> PackageFiles | None:
    """torch's conda package and its files, when torch imports but does not work."""
    facts = evidence.probe.facts if evidence.probe else None
    if facts is None or facts.torch is None or not torch_is_broken(facts) or not facts.torch.path:
        return None
    owner = conda_prefix_of(Path(facts.torch.path))
    if owner is None:
        return None
    progress.step(f"checking torch's files in {owner} against its conda package")
    return package_owning(owner, TORCH_INIT)


def _resolve(
    python: Path | None, prefix: Path | None, root: Path, variant: Variant | None
) -> tuple[Interpreter | None, tuple[str, str | None] | None]:
    """The interpreter, or why there is none (a failed check in the report, not an error)."""
    try:
        return resolve_interpreter(python=python, prefix=prefix, root=root, variant=variant), None
    except UsageError as exc:
        return None, (exc.message, exc.hint)


def _prefix_from_probe(probe: ProbeRun | None) -> Path | None:
    """A ``--python`` inside a conda environment still gets the lock check: its sys.prefix."""
    if probe is None or probe.facts is None or not probe.facts.python_prefix:
        return None
    return Path(probe.facts.python_prefix)


def _expected(detection: Detection) -> tuple[Variant, str]:
    target = detection.target
    if target.variant is None:
        # No variant fits this platform (an Intel Mac, say); its torch can still use the CPU.
        return Variant.cpu, f"detected: {target.reason}; checking the CPU"
    if target.variant_source == "detected":
        return target.variant, f"detected: {target.reason}"
    return target.variant, target.variant_source
