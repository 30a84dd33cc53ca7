"""The machine-vs-lock check: refuse before downloading anything, with the reason and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli
from install_support import Project, env_python_says, make_project

from setup_tool.install.compat import MachineFacts, assess, build_cuda, check_machine, cuda_need
from setup_tool.install.lockread import LockedPackage, LockedPlatform


def _package(name: str, version: str, build: str = "0", **deps: str) -> LockedPackage:
    return LockedPackage(
        name=name,
        version=version,
        build=build,
        url=f"https://conda.anaconda.org/conda-forge/linux-64/{name}-{version}-{build}.conda",
        sha256="0" * 64,
        md5="0" * 32,
        platform="linux-64",
        dependencies=tuple(
            sorted(
                (k.replace("_", "-") if not k.startswith("__") else k, v) for k, v in deps.items()
            )
        ),
    )


def _lock(*packages: LockedPackage) -> LockedPlatform:
    return LockedPlatform(Path("x.conda-lock.yml"), "linux-64", packages, ("linux-64",), None)


CUDA_LOCK = _lock(
    _package("cuda-version", "12.9", "h4f385c5_3"),
    _package("pytorch", "2.13.0", "cuda129_mkl_py312_h1_302", __cuda="", __glibc=">=2.28,<3.0.a0"),
)
CPU_LOCK_WITH_CUDA_VERSION = _lock(
    _package("cuda-version", "12.9", "h4f385c5_3"),
    _package("pytorch", "2.13.0", "cpu_mkl_py312_h1_102", __glibc=">=2.28,<3.0.a0"),
)
OLD_STYLE_LOCK = _lock(
    _package("cudatoolkit", "11.8.0", "h4ba93d1_13"),
    _package("pytorch", "2.1.2", "cuda118_py311_h1_300", __cuda=">=11.8"),
)


@pytest.mark.parametrize(
    ("lock", "machine", "problem", "fix"),
    [
        pytest.param(CUDA_LOCK, MachineFacts("13.0", "580.65.06", "2.35"), None, None, id="ok"),
        pytest.param(CUDA_LOCK, MachineFacts("12.9", "575.51.03", "2.35"), None, None, id="exact"),
        # CUDA minor-version compatibility: a 12.9 build runs on a CUDA 12.4 driver.
        pytest.param(
            CUDA_LOCK, MachineFacts("12.4", "550.54.14", "2.35"), None, None, id="older-minor",
        ),
        pytest.param(
            CUDA_LOCK, MachineFacts("11.8", "520.61.05", "2.35"),
            "pytorch is a CUDA build for CUDA 12.9 (cuda-version 12.9), which need a driver for "
            "CUDA 12 or newer (>= 525.60.13); driver 520.61.05 supports CUDA 11.8",
            "update the NVIDIA driver to 525.60.13 or newer", id="driver-major-too-old",
        ),
        pytest.param(
            CUDA_LOCK, MachineFacts(None, None, "2.35"),
            "pytorch is a CUDA build for CUDA 12.9 (cuda-version 12.9) and this machine has no "
            "NVIDIA driver",
            "a machine with an NVIDIA GPU and driver 525.60.13 or newer (CUDA 12)", id="no-driver",
        ),
        pytest.param(
            CUDA_LOCK, MachineFacts("13.0", "580.65.06", "2.17"),
            "pytorch needs glibc >=2.28,<3.0.a0 but this machine has glibc 2.17",
            "relock for an older glibc", id="glibc-too-old",
        ),
        pytest.param(
            CPU_LOCK_WITH_CUDA_VERSION, MachineFacts(None, glibc="2.35"), None, None,
            id="cpu-no-driver",
        ),
        # cudatoolkit 11.8 is a major lower bound; pytorch's own `__cuda >=11.8` is matched
        # as the solver matches it, and an 11.4 driver does not satisfy it.
        pytest.param(
            OLD_STYLE_LOCK, MachineFacts("11.4", "470.82.01"),
            "pytorch depends on __cuda >=11.8 and the driver supports CUDA 11.4",
            "update the NVIDIA driver to 520.61.05 or newer", id="cudatoolkit",
        ),
        pytest.param(
            OLD_STYLE_LOCK, MachineFacts("11.8", "520.61.05"), None, None, id="cuda-spec-met"
        ),
    ],
)  # fmt: skip
def test_check_machine(lock, machine, problem, fix) -> None:  # type: ignore[no-untyped-def]
    problems = check_machine(lock, machine)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0].reason
        assert fix in problems[0].fix


def test_macos_minimum() -> None:
    lock = LockedPlatform(
        Path("mps.conda-lock.yml"),
        "osx-arm64",
        (_package("pytorch", "2.13.0", "cpu_generic_py312_h1_2", __osx=">=14.0"),),
        ("osx-arm64",),
        None,
    )
    assert check_machine(lock, MachineFacts(None, macos="15.1")) == []
    (problem,) = check_machine(lock, MachineFacts(None, macos="13.6"))
    assert "macOS >=14.0" in problem.reason
    assert "13.6" in problem.reason


def test_cuda_need_is_the_strictest_of_the_packages() -> None:
    need = cuda_need(CUDA_LOCK)
    assert need is not None
    assert (need.packages, need.build, need.source) == (("pytorch",), "12.9", "cuda-version 12.9")
    assert cuda_need(CPU_LOCK_WITH_CUDA_VERSION) is None


def test_an_older_driver_minor_is_a_warning_that_says_what_can_fail() -> None:
    check = assess(CUDA_LOCK, MachineFacts("12.4", "550.54.14", "2.35"))
    assert check.fits
    assert check.cuda is not None and check.cuda.rule == "cuda-minor-version-compatibility"
    (warning,) = check.warnings
    assert warning.startswith("pytorch: ") and "PTX JIT" in warning and "12.4" in warning


def test_a_lock_without_pytorch_names_its_cuda_packages() -> None:
    lock = _lock(
        _package("cuda-version", "12.9", "h4f385c5_3"),
        _package("jaxlib", "0.7.2", "cuda129py312h1_200", __cuda=""),
        _package("tensorflow", "2.19.1", "cuda129py312h1_250", __cuda=""),
        _package("numpy", "2.3.0", "py312h1_0", __glibc=">=2.17,<3.0.a0"),
    )
    (problem,) = check_machine(lock, MachineFacts(None, None, "2.35"))
    assert problem.reason.startswith("jaxlib and tensorflow are CUDA builds")
    assert "PyTorch" not in problem.reason
    assert problem.kind == "cuda"


def test_every_reason_is_listed_cuda_before_glibc() -> None:
    problems = check_machine(CUDA_LOCK, MachineFacts(None, None, "2.17"))
    assert [p.kind for p in problems] == ["cuda", "glibc"]
    assert "no NVIDIA driver" in problems[0].reason
    assert "glibc 2.17" in problems[1].reason


@pytest.mark.parametrize(
    ("build", "cuda"),
    [
        ("cuda129_mkl_py312_hc17a9ed_302", "12.9"),
        ("cuda130_generic_py313_h1234567_202", "13.0"),
        ("cuda112py310he33e0d6_200", "11.2"),
        ("cuda120py312h1_200", "12.0"),
        ("py3.10_cuda11.8_cudnn8.7.0_0", "11.8"),
        ("py312_cu124", "12.4"),
        ("cpu_mkl_py312_hebc1070_102", None),
        ("py3.9_cpu_0", None),
        ("h4f385c5_3", None),
        ("py312hcuda1_0", None),
    ],
)
def test_cuda_version_in_build_strings(build: str, cuda: str | None) -> None:
    assert build_cuda(build) == cuda


# --- through the CLI, on real locks from the local channel ----------------------------------


@pytest.fixture
def cuda_project(tmp_path: Path, channel_url: str) -> Project:
    from setup_tool.lock import lock_variants
    from setup_tool.variants import Variant

    project = make_project(tmp_path, channel_url, locked=False)
    lock_variants(project.root, [Variant.cuda], channels=[channel_url], environ={})
    return project


def test_cuda_lock_on_a_machine_without_a_driver_is_refused(
    cli: Cli, cuda_project: Project
) -> None:
    env = {**cuda_project.env, "SETUP_TOOL_VARIANT": "cuda", "CONDA_OVERRIDE_CUDA": ""}
    result = cli("install", env=env)
    assert result.exit_code == 5
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "has no NVIDIA driver" in lines[0]
    assert "--variant cpu" in result.stderr
    assert not cuda_project.cache.exists()  # refused before any download


def test_cuda_lock_with_a_driver_too_old_is_refused(cli: Cli, cuda_project: Project) -> None:
    env = {**cuda_project.env, "SETUP_TOOL_VARIANT": "cuda", "CONDA_OVERRIDE_CUDA": "11.8"}
    result = cli("install", env=env)
    assert result.exit_code == 5
    assert "supports CUDA 11.8" in result.stderr
    assert "update the NVIDIA driver to 525.60.13 or newer" in result.stderr
    assert "--variant cpu" in result.stderr  # the project's own lock: its cpu variant
    assert not cuda_project.cache.exists()


def test_cuda_lock_on_an_older_cuda_12_driver_installs_with_a_warning(
    cli: Cli, cuda_project: Project
) -> None:
    env = {**cuda_project.env, "SETUP_TOOL_VARIANT": "cuda", "CONDA_OVERRIDE_CUDA": "12.4"}
    result = cli.ok("install", env=env)
    assert "minor-version compatibility" in result.stderr
    assert "PTX JIT" in result.stderr


def test_cuda_lock_installs_where_the_driver_is_new_enough(cli: Cli, cuda_project: Project) -> None:
    env = {**cuda_project.env, "SETUP_TOOL_VARIANT": "cuda", "CONDA_OVERRIDE_CUDA": "13.0"}
    data = json.loads(cli.ok("install", "--json", env=env).stdout)
    prefix = Path(data["prefix"])
    assert prefix.name == "cuda"
    build = env_python_says(prefix, "import torch; print(torch.__build__)")
    assert build.startswith("cuda129_")


def test_glibc_too_old_is_refused(cli: Cli, tmp_path: Path, channel_url: str) -> None:
    project = make_project(tmp_path, channel_url)
    result = cli("install", env={**project.env, "CONDA_OVERRIDE_GLIBC": "2.12"})
    assert result.exit_code == 5
    assert "glibc 2.12" in result.stderr
    assert not project.cache.exists()
