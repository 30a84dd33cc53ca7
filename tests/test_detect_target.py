"""The target decision: a pure function of Platform facts and overrides."""

from __future__ import annotations

import machines
import pytest

from setup_tool import cuda_compat
from setup_tool.detect import Overrides, Platform, overrides_from, select_target
from setup_tool.errors import UsageError
from setup_tool.variants import Variant, VariantChoice


def _vp(target, name):  # type: ignore[no-untyped-def]
    return {vp.name: vp for vp in target.virtual_packages}.get(name)


@pytest.mark.parametrize(
    ("platform", "variant", "cuda_build"),
    [
        pytest.param(machines.MAC_ARM64, Variant.mps, None, id="mac-arm64"),
        pytest.param(machines.MAC_ROSETTA, Variant.mps, None, id="mac-rosetta"),
        pytest.param(machines.MAC_OLD_MACOS, Variant.cpu, None, id="mac-macos13"),
        pytest.param(machines.LINUX_CUDA13, Variant.cuda, "13.0", id="linux-cuda13"),
        pytest.param(machines.LINUX_CUDA12_9, Variant.cuda, "12.9", id="linux-cuda12.9"),
        pytest.param(machines.LINUX_DRIVER_470, Variant.cpu, None, id="linux-driver470"),
        pytest.param(machines.LINUX_CUDA13_PASCAL, Variant.cuda, "12.9", id="linux-pascal"),
        pytest.param(machines.LINUX_TWO_GPUS, Variant.cuda, "13.0", id="linux-two-gpus"),
        pytest.param(machines.CPU_ONLY, Variant.cpu, None, id="no-gpu"),
        pytest.param(machines.LINUX_AARCH64_GH200, Variant.cuda, "13.0", id="aarch64-gh200"),
        pytest.param(machines.LINUX_AARCH64_CPU, Variant.cpu, None, id="aarch64-cpu"),
    ],
)
def test_detected_variant(platform: Platform, variant: Variant, cuda_build: str | None) -> None:
    target = select_target(platform)
    assert target.variant is variant
    assert target.variant_source == "detected"
    assert target.cuda_build == cuda_build
    assert target.reason


@pytest.mark.parametrize(
    "platform",
    [
        pytest.param(machines.WIN64, id="win-64"),
        pytest.param(machines.LINUX_PPC64LE, id="linux-ppc64le"),
        pytest.param(machines.MAC_INTEL, id="mac-intel"),
    ],
)
def test_unsupported_platforms_say_why(platform: Platform) -> None:
    target = select_target(platform)
    assert not target.supported
    assert target.name == "unsupported"
    assert platform.subdir in target.reason
    assert target.to_json()["variant"] == "unsupported"
    assert target.to_json()["lockfile"] is None


def test_old_driver_reason_names_the_driver_to_install() -> None:
    target = select_target(machines.LINUX_DRIVER_470)
    assert "11.4" in target.reason
    assert "525.60.13" in target.reason  # the oldest driver that runs CUDA 12.x builds
    assert target.to_json()["cuda"]["rule"] == "driver-major-too-old"
    assert target.to_json()["cuda"]["minimum_driver"] == "525.60.13"


@pytest.mark.parametrize("driver_cuda", ["12.0", "12.4", "12.8"])
def test_an_older_cuda_12_driver_gets_the_12_9_build_with_a_warning(driver_cuda: str) -> None:
    """CUDA minor-version compatibility: a 12.9 build runs on any driver for CUDA 12."""
    target = select_target(
        machines.CPU_ONLY, overrides_from(None, {"CONDA_OVERRIDE_CUDA": driver_cuda})
    )
    assert target.variant is Variant.cuda
    assert target.cuda_build == "12.9"
    assert "minor-version compatibility" in target.reason
    (warning,) = (w for w in target.warnings if "minor-version" in w)
    assert driver_cuda in warning and "PTX JIT" in warning
    cuda = target.to_json()["cuda"]
    assert (cuda["rule"], cuda["fits"]) == ("cuda-minor-version-compatibility", True)
    assert cuda["warning"] == warning


def test_a_cuda_13_driver_gets_the_13_0_build_and_no_warning() -> None:
    target = select_target(machines.CPU_ONLY, overrides_from(None, {"CONDA_OVERRIDE_CUDA": "13.0"}))
    assert (target.variant, target.cuda_build, target.warnings) == (Variant.cuda, "13.0", ())
    assert target.to_json()["cuda"]["rule"] == "driver-cuda-at-least-build"


def test_a_cuda_11_driver_gets_cpu_and_the_driver_to_install() -> None:
    target = select_target(machines.CPU_ONLY, overrides_from(None, {"CONDA_OVERRIDE_CUDA": "11.8"}))
    assert target.variant is Variant.cpu
    assert "update the NVIDIA driver to 525.60.13 or newer" in target.reason


def test_a_550_driver_runs_the_12_9_build() -> None:
    platform = machines.linux(
        nvidia=machines.Nvidia(
            "550.54.15", "12.4", (machines.Gpu(0, "NVIDIA A100", 81920, "8.0"),)
        ),
        sources=machines.NVML,
    )
    target = select_target(platform)
    assert (target.variant, target.cuda_build) == (Variant.cuda, "12.9")


def test_an_old_gpu_on_a_new_enough_driver_names_the_gpu() -> None:
    kepler = machines.linux(
        nvidia=machines.Nvidia("580.65.06", "13.0", (machines.Gpu(0, "Tesla K80", 11441, "3.7"),)),
        sources=machines.NVML,
    )
    target = select_target(kepler)
    assert target.variant is Variant.cpu
    assert "compute capability 3.7" in target.reason


def test_cuda_virtual_package_is_the_driver_cuda_and_glibc_the_machine_s() -> None:
    target = select_target(machines.LINUX_CUDA13)
    assert _vp(target, "__cuda").version == "13.0"
    assert _vp(target, "__glibc").version == "2.39"
    assert _vp(target, "__linux").version == "6.8.0"
    assert _vp(target, "__archspec").build == "x86_64"
    assert _vp(target, "__osx") is None


def test_cpu_target_has_no_cuda_virtual_package() -> None:
    assert _vp(select_target(machines.CPU_ONLY), "__cuda") is None


def test_mac_virtual_packages() -> None:
    target = select_target(machines.MAC_ARM64)
    assert target.subdir == "osx-arm64"
    assert _vp(target, "__osx").version == "15.1"
    assert _vp(target, "__glibc") is None
    assert _vp(target, "__unix") is not None


def test_rosetta_python_is_warned_about_and_still_gets_native_subdir() -> None:
    target = select_target(machines.MAC_ROSETTA)
    assert machines.MAC_ROSETTA.python_subdir == "osx-64"
    assert target.subdir == "osx-arm64"
    assert any("Rosetta" in w for w in target.warnings)
    assert not select_target(machines.MAC_ARM64).warnings


def test_flag_overrides_detection_and_says_so() -> None:
    target = select_target(machines.LINUX_CUDA13, Overrides(Variant.cpu, "--variant"))
    assert target.variant is Variant.cpu
    assert target.variant_source == "--variant"
    assert "cuda" in target.reason  # what detection would have chosen
    assert _vp(target, "__cuda").version == "13.0"  # the machine still has its driver


def test_forcing_cuda_without_a_driver_warns_and_claims_no_build() -> None:
    """The lock's own cuda-version decides the build; detection has no driver to go by."""
    target = select_target(machines.CPU_ONLY, Overrides(Variant.cuda, "SETUP_TOOL_VARIANT"))
    assert target.variant is Variant.cuda
    assert target.cuda_build is None
    assert any("no NVIDIA driver" in w and "will not run" in w for w in target.warnings)


def test_forcing_cuda_on_a_too_old_driver_warns_why() -> None:
    target = select_target(machines.LINUX_DRIVER_470, Overrides(Variant.cuda, "--variant"))
    assert target.variant is Variant.cuda
    assert any("525.60.13" in w and "will not run" in w for w in target.warnings)


def test_forcing_mps_on_linux_warns_it_cannot_be_installed_here() -> None:
    target = select_target(machines.CPU_ONLY, Overrides(Variant.mps, "--variant"))
    assert target.variant is Variant.mps
    assert any("osx-arm64" in w and "not installed" in w for w in target.warnings)


@pytest.mark.parametrize(
    ("environ", "platform", "variant", "driver_cuda"),
    [
        pytest.param(
            {"CONDA_OVERRIDE_CUDA": "13.0"}, machines.CPU_ONLY, Variant.cuda, "13.0", id="adds-cuda"
        ),
        pytest.param(
            {"CONDA_OVERRIDE_CUDA": ""},
            machines.LINUX_CUDA13,
            Variant.cpu,
            None,
            id="empty-removes",
        ),
        pytest.param(
            {"CONDA_OVERRIDE_CUDA": "12.4"},
            machines.LINUX_CUDA13,
            Variant.cuda,
            "12.4",
            id="lowers",
        ),
        pytest.param(
            {"CONDA_OVERRIDE_CUDA": "11.8"},
            machines.LINUX_CUDA13,
            Variant.cpu,
            "11.8",
            id="too-old",
        ),
        pytest.param(
            {"CONDA_OVERRIDE_CUDA": "12.9"},
            machines.LINUX_CUDA13,
            Variant.cuda,
            "12.9",
            id="picks-12.9",
        ),
    ],
)
def test_conda_override_cuda_as_conda_does(
    environ: dict[str, str], platform: Platform, variant: Variant, driver_cuda: str | None
) -> None:
    target = select_target(platform, overrides_from(None, environ))
    assert target.variant is variant
    assert target.driver_cuda == driver_cuda
    assert target.cuda_source == "CONDA_OVERRIDE_CUDA"
    assert (_vp(target, "__cuda") is None) == (driver_cuda is None)


def test_precedence_flag_then_env_then_detection() -> None:
    environ = {"SETUP_TOOL_VARIANT": "cpu"}
    assert overrides_from(VariantChoice.cuda, environ) == Overrides(Variant.cuda, "--variant")
    assert overrides_from(None, environ) == Overrides(Variant.cpu, "SETUP_TOOL_VARIANT")
    assert overrides_from(VariantChoice.auto, environ) == Overrides(None, "detected")
    assert overrides_from(None, {}) == Overrides(None, "detected")
    assert overrides_from(None, {"SETUP_TOOL_VARIANT": "AUTO"}) == Overrides(None, "detected")


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        pytest.param({"SETUP_TOOL_VARIANT": "rocm"}, "auto, cuda, mps, cpu", id="bad-variant"),
        pytest.param({"CONDA_OVERRIDE_CUDA": "abc"}, "not a CUDA version", id="bad-cuda"),
        pytest.param({"CONDA_OVERRIDE_CUDA": "12.x"}, "not a CUDA version", id="bad-cuda-x"),
    ],
)
def test_bad_overrides_are_usage_errors(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        overrides_from(None, environ)
    assert needle in caught.value.message
    assert caught.value.hint


def test_driver_present_but_no_gpu_is_cpu() -> None:
    platform = machines.linux(nvidia=machines.Nvidia("580.65.06", "13.0", ()))
    target = select_target(platform)
    assert target.variant is Variant.cpu
    assert "no GPU" in target.reason


def test_target_json_has_the_documented_keys() -> None:
    data = select_target(machines.LINUX_CUDA13).to_json()
    assert set(data) == {
        "variant",
        "variant_source",
        "reason",
        "subdir",
        "cuda",
        "virtual_packages",
        "lockfile",
        "warnings",
    }
    assert data["cuda"] == {
        "build": "13.0",
        "driver": "13.0",
        "source": "nvml",
        "rule": "driver-cuda-at-least-build",
        "rule_text": cuda_compat.RULE_TEXT,
        "fits": True,
        "warning": None,
        "minimum_driver": None,
    }
    assert data["lockfile"] == "envs/locks/cuda.conda-lock.yml"
