"""The machine-vs-lock check: refuse before downloading anything, with the reason and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli
from install_support import Project, env_python_says, make_project

from setup_tool.install.compat import MachineFacts, check_machine, required_cuda
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
        pytest.param(
            CUDA_LOCK, MachineFacts("12.4", "550.54.14", "2.35"),
            "needs CUDA 12.9 (cuda-version 12.9) but driver 550.54.14 supports CUDA 12.4",
            "update the NVIDIA driver to 575.51.03 or newer", id="driver-too-old",
        ),
        pytest.param(
            CUDA_LOCK, MachineFacts(None, None, "2.35"), "has no NVIDIA driver",
            "setup-tool install --variant cpu", id="no-driver",
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
        pytest.param(
            OLD_STYLE_LOCK, MachineFacts("11.4", "470.82.01"),
            "needs CUDA 11.8 (cudatoolkit 11.8.0)", "CONDA_OVERRIDE_CUDA=11.8", id="cudatoolkit",
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


def test_required_cuda_is_the_strictest_of_the_packages() -> None:
    assert required_cuda(CUDA_LOCK) == ("12.9", "cuda-version 12.9")
    assert required_cuda(CPU_LOCK_WITH_CUDA_VERSION) == (None, None)


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
    env = {**cuda_project.env, "SETUP_TOOL_VARIANT": "cuda", "CONDA_OVERRIDE_CUDA": "12.4"}
    result = cli("install", env=env)
    assert result.exit_code == 5
    assert "supports CUDA 12.4" in result.stderr
    assert "575.51.03" in result.stderr
    assert not cuda_project.cache.exists()


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
