"""Diagnoses from recorded probe JSON: every ``tests/data/probe-*.json`` has expected outcomes.

The probe files are real recordings or derived from one (tests/data/README.md says which).
Judging is a pure function of the probe's facts and a ``Platform`` built here, so each case
states the machine it stands for. A new recording (from a GPU machine) needs a ``CASES`` entry;
``test_every_probe_file_has_a_case`` fails until it has one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import machines
import pytest
from doctor_fixtures import (
    A100_OLD_DRIVER,
    EIGHT_H200,
    H200,
    MAC_ARM,
    MAC_OLD,
    MAC_ROSETTA,
    NO_DRIVER,
    P100,
    like_probe,
)

from setup_tool import cuda_compat
from setup_tool.detect.facts import Platform
from setup_tool.doctor.checks import Evidence, expected_torchvision, judge, tolerance_for
from setup_tool.doctor.drift import Drift
from setup_tool.doctor.facts import (
    CudaDevice,
    Measurement,
    Placement,
    ProbeFacts,
    ProbeFormatError,
    Torchvision,
    parse_probe,
)
from setup_tool.doctor.launch import ProbeRun
from setup_tool.doctor.pitfalls import arch_covers, find_pitfalls, import_fix
from setup_tool.doctor.result import DoctorResult, Status
from setup_tool.errors import ExitCode
from setup_tool.interpreter import Interpreter
from setup_tool.variants import Variant

DATA = Path(__file__).parent / "data"

PASS, WARN, FAIL, SKIP = Status.passed, Status.warned, Status.failed, Status.skipped

# --- cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    file: str
    expect: Variant
    machine: Platform | Callable[[Mapping[str, Any]], Platform]
    exit_code: ExitCode
    statuses: Mapping[str, Status]  # check id → its status
    fixes: Mapping[str, str] = field(default_factory=dict)  # check id → text in its fix
    absent: tuple[str, ...] = ()  # check ids that must not appear
    all_cuda_pass: bool = False  # every visible GPU passed (recorded GPU runs)


REAL_CPU = "probe-linux-x86_64-cu130-no-gpu.json"

CASES: dict[str, Case] = {
    "cpu-machine-expect-cpu": Case(
        REAL_CPU,
        Variant.cpu,
        NO_DRIVER,
        ExitCode.OK,
        {"python": PASS, "torch": PASS, "placement.cpu": PASS, "placement.cuda": SKIP},
        absent=("pitfall.no-nvidia-driver", "placement.mps"),
    ),
    "cpu-machine-expect-cuda": Case(
        REAL_CPU,
        Variant.cuda,
        NO_DRIVER,
        ExitCode.DOCTOR_FAILED,
        {"placement.cpu": PASS, "placement.cuda": FAIL, "pitfall.no-nvidia-driver": FAIL},
        fixes={"pitfall.no-nvidia-driver": "580.65.06"},
    ),
    "cpu-machine-expect-mps": Case(
        REAL_CPU,
        Variant.mps,
        NO_DRIVER,
        ExitCode.DOCTOR_FAILED,
        {"placement.mps": FAIL, "pitfall.mps-not-a-mac": FAIL},
        fixes={"pitfall.mps-not-a-mac": "--expect auto"},
    ),
    "cpu-only-torch-expect-cuda": Case(
        "probe-derived-linux-cpu-only-torch.json",
        Variant.cuda,
        H200,
        ExitCode.DOCTOR_FAILED,
        {"placement.cuda": FAIL, "pitfall.cpu-only-torch": FAIL},
        fixes={"pitfall.cpu-only-torch": "setup-tool env --variant cuda"},
        absent=("pitfall.no-nvidia-driver",),
    ),
    "cpu-only-torch-expect-cpu": Case(
        "probe-derived-linux-cpu-only-torch.json",
        Variant.cpu,
        H200,
        ExitCode.OK,
        {"placement.cpu": PASS, "pitfall.cpu-only-torch": WARN},
    ),
    "driver-too-old": Case(
        "probe-derived-linux-driver-too-old.json",
        Variant.cuda,
        A100_OLD_DRIVER,
        ExitCode.DOCTOR_FAILED,
        {"placement.cuda": FAIL, "pitfall.driver-too-old": FAIL},
        fixes={"pitfall.driver-too-old": "580.65.06"},
        absent=("pitfall.no-nvidia-driver", "pitfall.cpu-only-torch"),
    ),
    "gpu-arch-missing": Case(
        "probe-derived-linux-gpu-arch-missing.json",
        Variant.cuda,
        P100,
        ExitCode.DOCTOR_FAILED,
        {"placement.cuda:0": FAIL, "pitfall.gpu-arch-missing": FAIL, "torchvision": FAIL},
        fixes={"pitfall.gpu-arch-missing": "CONDA_OVERRIDE_CUDA=12.9"},
    ),
    "cuda-visible-devices-empty": Case(
        "probe-derived-linux-cuda-visible-devices-empty.json",
        Variant.cuda,
        EIGHT_H200,
        ExitCode.DOCTOR_FAILED,
        {"placement.cuda": FAIL, "pitfall.cuda-visible-devices": FAIL},
        fixes={"pitfall.cuda-visible-devices": "unset CUDA_VISIBLE_DEVICES"},
        absent=("pitfall.no-nvidia-driver",),
    ),
    "torchvision-mismatch": Case(
        "probe-derived-linux-torchvision-mismatch.json",
        Variant.cpu,
        NO_DRIVER,
        ExitCode.DOCTOR_PROBLEMS,
        {"placement.cpu": PASS, "torchvision": FAIL},
        fixes={"torchvision": "torchvision 0.29.x"},
    ),
    "torchvision-missing": Case(
        "probe-derived-linux-torchvision-missing.json",
        Variant.cpu,
        NO_DRIVER,
        ExitCode.OK,
        {"placement.cpu": PASS, "torchvision": SKIP},
    ),
    "cpu-wrong-results": Case(
        "probe-derived-linux-cpu-wrong-results.json",
        Variant.cpu,
        NO_DRIVER,
        ExitCode.DOCTOR_FAILED,
        {"placement.cpu": FAIL},
    ),
    "mac-mps": Case(
        "probe-derived-mac-mps.json",
        Variant.mps,
        MAC_ARM,
        ExitCode.OK,
        {"placement.cpu": PASS, "placement.mps": PASS, "torchvision": PASS},
        absent=("pitfall.rosetta", "pitfall.mps-unavailable", "placement.cuda"),
    ),
    "mac-rosetta-expect-mps": Case(
        "probe-derived-mac-rosetta.json",
        Variant.mps,
        MAC_ROSETTA,
        ExitCode.DOCTOR_FAILED,
        {"placement.mps": FAIL, "pitfall.rosetta": FAIL, "torchvision": SKIP},
        fixes={"pitfall.rosetta": "arch -arm64"},
        absent=("pitfall.mps-unavailable", "pitfall.mps-not-built"),
    ),
    "mac-rosetta-expect-cpu": Case(
        "probe-derived-mac-rosetta.json",
        Variant.cpu,
        MAC_ROSETTA,
        ExitCode.OK,
        {"placement.cpu": PASS, "pitfall.rosetta": WARN},
    ),
    "mac-old-macos": Case(
        "probe-derived-mac-old-macos.json",
        Variant.mps,
        MAC_OLD,
        ExitCode.DOCTOR_FAILED,
        {"placement.mps": FAIL, "pitfall.macos-too-old": FAIL},
        fixes={"pitfall.macos-too-old": "14.0"},
        absent=("pitfall.mps-unavailable",),
    ),
    "torch-import-error": Case(
        "probe-staged-linux-torch-import-error.json",
        Variant.cpu,
        NO_DRIVER,
        ExitCode.DOCTOR_FAILED,
        {"python": PASS, "torch": FAIL},
        fixes={"torch": "setup-tool install"},
        absent=("placement.cpu", "torchvision"),
    ),
    # A recording from an NVIDIA H200 machine (`--expect cuda` must pass there).
    "h200": Case(
        "probe-linux-h200.json",
        Variant.cuda,
        like_probe,
        ExitCode.OK,
        {"python": PASS, "torch": PASS, "placement.cpu": PASS},
        absent=("pitfall.driver-too-old", "pitfall.gpu-arch-missing"),
        all_cuda_pass=True,
    ),
}


def load(name: str) -> dict[str, Any]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{name} is recorded on a machine with that hardware (not committed yet)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def judge_recorded(
    probe: Mapping[str, Any],
    expect: Variant,
    platform: Platform,
    drift: Drift | None = None,
) -> DoctorResult:
    facts = parse_probe(probe)
    python = Path(facts.python_executable)
    return judge_facts(facts, expect, platform, drift, argv=(str(python), "probe.py"))


def judge_facts(
    facts: ProbeFacts,
    expect: Variant,
    platform: Platform | None,
    drift: Drift | None = None,
    argv: tuple[str, ...] = ("python",),
) -> DoctorResult:
    """The doctor's verdict on ``facts``, as if ``--expect`` and ``--python`` were given."""
    python = Path(argv[0])
    run = ProbeRun(argv, facts)
    return judge(
        Evidence(expect, "--expect", platform, Interpreter(python, "--python"), None, run, drift)
    )


def statuses(result: DoctorResult) -> dict[str, Status]:
    return {c.id: c.status for c in result.checks}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_recorded_probe(case: Case) -> None:
    probe = load(case.file)
    platform = case.machine if isinstance(case.machine, Platform) else case.machine(probe)
    result = judge_recorded(probe, case.expect, platform)
    seen = statuses(result)
    report = "\n".join(f"{c.status.value} {c.id}: {c.detail} | fix: {c.fix}" for c in result.checks)
    for check_id, status in case.statuses.items():
        assert seen.get(check_id) is status, f"{check_id}: {seen.get(check_id)}\n{report}"
    for check_id, text in case.fixes.items():
        fix = next(c.fix for c in result.checks if c.id == check_id)
        assert fix is not None and text in fix, report
    for check_id in case.absent:
        assert check_id not in seen, report
    assert result.exit_code is case.exit_code, report
    # A failure always says how to fix it.
    assert all(c.fix for c in result.checks if c.status is FAIL), report
    if case.all_cuda_pass:
        cuda = [c for c in result.checks if c.id.startswith("placement.cuda:")]
        assert cuda, report
        assert all(c.status is PASS for c in cuda), report
        assert len(cuda) == probe["torch"]["cuda_device_count"]


def test_every_probe_file_has_a_case() -> None:
    files = {p.name for p in DATA.glob("probe-*.json")}
    assert REAL_CPU in files
    assert files <= {case.file for case in CASES.values()}


def test_derived_files_say_how_they_were_derived() -> None:
    for path in DATA.glob("probe-derived-*.json"):
        assert json.loads(path.read_text())["derived"].startswith(f"from {REAL_CPU}:"), path


def test_real_cpu_recording_is_this_machines_kind() -> None:
    """The recorded base is a CUDA build of torch from PyPI on a machine with no GPU."""
    facts = parse_probe(load(REAL_CPU))
    assert facts.torch is not None
    assert facts.torch.cuda == "13.0"
    assert facts.torch.cuda_available is False
    assert facts.torch.cuda_error is not None
    assert "Found no NVIDIA driver" in facts.torch.cuda_error
    assert not facts.torch.tf32_possible  # the flags read back False once set


# --- pieces of the judgement --------------------------------------------------------------

ARCHS_CU130 = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


@pytest.mark.parametrize(
    ("archs", "capability", "covered"),
    [
        (ARCHS_CU130, "9.0", True),  # H100 / H200
        (ARCHS_CU130, "8.9", True),  # L4: sm_86 cubins run on 8.9 (same major, lower minor)
        (ARCHS_CU130, "12.0", True),
        (ARCHS_CU130, "6.0", False),  # P100: below every cubin, no PTX
        (ARCHS_CU130, "7.0", False),  # V100: sm_75 does not run on 7.0
        (("sm_90a",), "9.0", True),
        (("sm_90a",), "10.0", False),  # arch-specific code runs on exactly 9.0
        (("sm_80", "compute_80"), "9.0", True),  # PTX is JIT-compiled forward
        (("sm_80", "compute_80"), "7.5", False),
    ],
)
def test_arch_covers(archs: tuple[str, ...], capability: str, covered: bool) -> None:
    assert arch_covers(archs, capability) is covered


def _facts(**torch_changes: Any) -> ProbeFacts:
    facts = parse_probe(load(REAL_CPU))
    assert facts.torch is not None
    return replace(facts, torch=replace(facts.torch, **torch_changes))


def _gpu_facts(count: int, cvd: str | None) -> ProbeFacts:
    facts = _facts(cuda_available=True, cuda_device_count=count, cuda_error=None)
    cpu = facts.placement[0]
    return replace(
        facts,
        environment={**facts.environment, "CUDA_VISIBLE_DEVICES": cvd},
        devices=tuple(CudaDevice(i, "NVIDIA H200", "9.0") for i in range(count)),
        placement=(
            cpu,
            *(replace(cpu, device=f"cuda:{i}", moved_to=f"cuda:{i}") for i in range(count)),
        ),
    )


def test_cuda_visible_devices_hiding_some_gpus_is_a_warning() -> None:
    result = judge_facts(_gpu_facts(2, "0,1"), Variant.cuda, EIGHT_H200)
    check = next(c for c in result.checks if c.id == "pitfall.cuda-visible-devices")
    assert check.status is WARN
    assert "2 of the driver's 8 GPUs" in check.detail
    assert check.fix is not None and "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in check.fix
    assert result.exit_code is ExitCode.OK
    assert [c.id for c in result.checks if c.id.startswith("placement.cuda")] == [
        "placement.cuda:0",
        "placement.cuda:1",
    ]


def test_one_failing_gpu_of_two_fails_cuda() -> None:
    facts = _gpu_facts(2, None)
    broken = replace(facts.placement[2], stage="matmul", error="RuntimeError: CUDA error: ECC")
    facts = replace(facts, placement=(*facts.placement[:2], broken))
    result = judge_facts(facts, Variant.cuda, machines.LINUX_TWO_GPUS)
    seen = statuses(result)
    assert seen["placement.cuda:0"] is PASS
    assert seen["placement.cuda:1"] is FAIL
    assert result.exit_code is ExitCode.DOCTOR_FAILED


def test_driver_same_major_older_minor_is_a_warning() -> None:
    """CUDA minor-version compatibility: a 13.0 driver runs a 13.2 build, minus PTX JIT."""
    facts = replace(_facts(cuda="13.2"), driver_version="580.95.05", driver_cuda="13.0")
    found = {d.pitfall.id: d for d in find_pitfalls(Variant.cuda, facts, H200)}
    assert found["driver-too-old"].blocking is False
    assert "minor-version compatibility" in found["driver-too-old"].finding.detail


def test_driver_too_old_names_the_build_it_can_run() -> None:
    facts = replace(
        _facts(cuda_error="RuntimeError: The NVIDIA driver on your system is too old"),
        driver_version="575.57.08",
        driver_cuda="12.9",
    )
    platform = machines.LINUX_CUDA12_9
    found = {d.pitfall.id: d for d in find_pitfalls(Variant.cuda, facts, platform)}
    assert found["driver-too-old"].blocking
    assert "CUDA 12.9 build" in found["driver-too-old"].finding.fix


@pytest.mark.parametrize(
    ("build", "driver_version", "driver_cuda"),
    [
        ("12.9", "575.51.03", "12.9"),  # full support
        ("12.9", "580.95.05", "13.0"),  # a newer driver
        ("12.9", "550.54.14", "12.4"),  # same major, older minor
        ("13.0", "575.51.03", "12.9"),  # older major
        ("11.8", "450.36.06", "11.0"),  # CUDA 11.0's driver predates minor-version compat
        ("11.8", "470.42.01", "11.4"),
        ("13.2", "580.95.05", "13.0"),
    ],
)
def test_driver_verdict_is_cuda_compat_rule(
    build: str, driver_version: str, driver_cuda: str
) -> None:
    """The doctor's driver verdict is setup_tool.cuda_compat.check's, as for detect/lock/install:
    no finding when it fits fully, a warning under minor-version compatibility, else a failure
    naming the major's minimum driver."""
    facts = replace(
        _facts(cuda=build, cuda_error=None), driver_version=driver_version, driver_cuda=driver_cuda
    )
    fit = cuda_compat.check(build, driver_cuda, driver_version=driver_version)
    found = {d.pitfall.id: d for d in find_pitfalls(Variant.cuda, facts, H200)}
    finding = found["driver-too-old"].finding if "driver-too-old" in found else None
    if fit.rule == cuda_compat.RULE_FULL_SUPPORT:
        assert finding is None
    elif fit.fits:
        assert finding is not None and not finding.blocking
        assert cuda_compat.MINOR_COMPAT_LIMITS in finding.detail
    else:
        assert finding is not None and finding.blocking
        assert f"{fit.minimum_driver} or newer" in finding.fix


def test_cuda_11_0_driver_is_too_old_for_a_cuda_11_8_torch() -> None:
    """Same major but a driver older than 450.80.02: cuda_compat refuses it, so does doctor."""
    facts = replace(
        _facts(cuda="11.8", cuda_error=None), driver_version="450.36.06", driver_cuda="11.0"
    )
    found = {d.pitfall.id: d for d in find_pitfalls(Variant.cuda, facts, H200)}
    assert found["driver-too-old"].blocking
    assert "450.80.02 or newer" in found["driver-too-old"].finding.fix


def test_absent_torchvision_as_the_probe_reports_it_is_a_skipped_line() -> None:
    """The probe leaves ops_checked False for a torchvision it did not find: the report still
    says it is absent (optional), and the run passes."""
    facts = replace(_facts(), torchvision=Torchvision(found=False, ops_checked=False))
    result = judge_facts(facts, Variant.cpu, NO_DRIVER)
    check = next(c for c in result.checks if c.id == "torchvision")
    assert check.status is SKIP and check.fix is None
    assert check.detail.startswith("torchvision is not installed; nothing to check")
    assert "torchvision 0.29.x is the one built for torch 2.14" in check.detail
    assert result.exit_code is ExitCode.OK


def test_new_gpu_unknown_to_torch_asks_for_a_newer_torch() -> None:
    facts = replace(
        _facts(cuda_available=True, cuda_device_count=1, cuda_error=None),
        devices=(CudaDevice(0, "NVIDIA Future GPU", "13.0"),),
    )
    found = {d.pitfall.id: d for d in find_pitfalls(Variant.cuda, facts, H200)}
    assert "newer PyTorch" in found["gpu-arch-missing"].finding.fix


def test_tf32_that_could_not_be_turned_off_gets_the_tf32_tolerance() -> None:
    run = Placement(device="cuda:0", tf32=True)
    assert tolerance_for(run) > tolerance_for(replace(run, tf32=False))
    measured = Measurement(max_abs_error=0.3, reference_max_abs=100.0, finite=True)
    assert measured.relative_error == pytest.approx(3e-3)
    # TF32-sized errors fail the float32 tolerance and pass the tf32 one.
    assert tolerance_for(replace(run, tf32=False)) < 3e-3 < tolerance_for(run)


def test_non_finite_results_fail() -> None:
    facts = parse_probe(load(REAL_CPU))
    cpu = facts.placement[0]
    assert cpu.conv is not None
    nan = replace(cpu, conv=replace(cpu.conv, max_abs_error=None, finite=False))
    result = judge_recorded(load(REAL_CPU), Variant.cpu, NO_DRIVER)
    assert statuses(result)["placement.cpu"] is PASS
    result = judge_facts(replace(facts, placement=(nan,)), Variant.cpu, NO_DRIVER)
    check = next(c for c in result.checks if c.id == "placement.cpu")
    assert check.status is FAIL
    assert "NaN" in check.detail


def test_torchvision_pairs_with_torch_minor_plus_15() -> None:
    assert expected_torchvision("2.14.1+cu130") == "0.29"
    assert expected_torchvision("2.5.1") == "0.20"
    assert expected_torchvision("1.13.1") is None


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("ModuleNotFoundError: No module named 'torch'", "--python"),
        ("ImportError: libcudnn.so.9: cannot open shared object file", "missing"),
        ("ImportError: torch/lib/libtorch_cpu.so: undefined symbol: iJIT_NotifyEvent", "pip"),
        ("RuntimeError: something else", "setup-tool install"),
    ],
)
def test_import_failures_map_to_fixes(error: str, fix: str) -> None:
    assert fix in import_fix(error)


def test_an_older_recording_without_newer_keys_still_judges() -> None:
    probe = load(REAL_CPU)
    for key in ("tf32", "warnings", "mps_error"):
        probe["torch"].pop(key)
    assert judge_recorded(probe, Variant.cpu, NO_DRIVER).exit_code is ExitCode.OK


@pytest.mark.parametrize(
    "document",
    [{}, [], {"schema_version": 1}, {"schema_version": 2, "python": {}}],
    ids=["empty", "list", "no-python", "newer-schema"],
)
def test_documents_that_are_not_probes_are_rejected(document: Any) -> None:
    with pytest.raises(ProbeFormatError):
        parse_probe(document)
