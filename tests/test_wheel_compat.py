"""The wheel machine check as a pure function: tags against a Python, a platform and a driver."""

from __future__ import annotations

import pytest

from setup_tool.install.compat import MachineFacts
from setup_tool.install.wheelcompat import accepted_platforms, check_wheels, required_cuda
from setup_tool.install.wheels import LockedWheel, PythonTarget, python_target

PY312 = PythonTarget((3, 12), "cp312")
LINUX = MachineFacts(None, glibc="2.28")


def wheel(filename: str, name: str = "pkg", version: str = "1.0") -> LockedWheel:
    return LockedWheel(name, version, f"https://example.org/{filename}", "0" * 64, "linux-64")


def reasons(check) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.reason for p in check.problems]


@pytest.mark.parametrize(
    ("filename", "machine", "platform", "python"),
    [
        ("pkg-1.0-py3-none-any.whl", LINUX, "linux-64", PY312),
        ("pkg-1.0-py2.py3-none-any.whl", LINUX, "linux-64", PY312),
        (
            "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            LINUX,
            "linux-64",
            PY312,
        ),
        ("pkg-1.0-cp38-abi3-manylinux2014_x86_64.whl", LINUX, "linux-64", PY312),
        (
            "pkg-1.0-cp312-cp312-manylinux1_x86_64.whl",
            MachineFacts(None, glibc="2.5"),
            "linux-64",
            PY312,
        ),
        ("pkg-1.0-cp312-cp312-manylinux_2_28_aarch64.whl", LINUX, "linux-aarch64", PY312),
        ("pkg-1.0-cp312-cp312-linux_x86_64.whl", MachineFacts(None), "linux-64", PY312),
        (
            "pkg-1.0-cp312-cp312-macosx_11_0_arm64.whl",
            MachineFacts(None, macos="14.5"),
            "osx-arm64",
            PY312,
        ),
        (
            "pkg-1.0-cp312-cp312-macosx_10_9_universal2.whl",
            MachineFacts(None, macos="13.0"),
            "osx-arm64",
            PY312,
        ),
        ("pkg-1.0-cp312-cp312-win_amd64.whl", MachineFacts(None), "win-64", PY312),
        (
            "pkg-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl",
            LINUX,
            "linux-64",
            PythonTarget((3, 13), "cp313t"),
        ),
    ],
)
def test_wheels_that_fit(
    filename: str, machine: MachineFacts, platform: str, python: PythonTarget
) -> None:
    assert reasons(check_wheels([wheel(filename)], python, platform, machine)) == []


@pytest.mark.parametrize(
    ("filename", "machine", "platform", "python", "words"),
    [
        (
            "pkg-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
            MachineFacts(None, glibc="2.17"),
            "linux-64",
            PY312,
            "needs glibc 2.28 (manylinux) but this machine has glibc 2.17",
        ),
        (
            "pkg-1.0-cp312-cp312-manylinux2014_x86_64.whl",
            MachineFacts(None),
            "linux-64",
            PY312,
            "needs glibc 2.17 and this machine's glibc is unknown",
        ),
        (
            "pkg-1.0-cp312-cp312-macosx_14_0_arm64.whl",
            MachineFacts(None, macos="13.6"),
            "osx-arm64",
            PY312,
            "needs macOS 14.0 but this machine has macOS 13.6",
        ),
        (
            "pkg-1.0-cp312-cp312-macosx_11_0_x86_64.whl",
            MachineFacts(None, macos="14.0"),
            "osx-arm64",
            PY312,
            "is built for macosx_11_0_x86_64, not for this machine's osx-arm64",
        ),
        (
            "pkg-1.0-cp312-cp312-win_amd64.whl",
            LINUX,
            "linux-64",
            PY312,
            "is built for win_amd64, not for this machine's linux-64",
        ),
        (
            "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            LINUX,
            "linux-64",
            PY312,
            "is built for cp311-cp311 but the environment's Python is Python 3.12 (cp312)",
        ),
        (
            "pkg-1.0-cp38-abi3-manylinux_2_17_x86_64.whl",
            LINUX,
            "linux-64",
            PythonTarget((3, 13), "cp313t"),
            "but the environment's Python is Python 3.13 (free-threaded) (cp313t)",
        ),
        (
            "pkg-1.0-py2-none-any.whl",
            LINUX,
            "linux-64",
            PY312,
            "is built for py2-none but the environment's Python is Python 3.12",
        ),
    ],
)
def test_wheels_that_do_not_fit_say_why(
    filename: str, machine: MachineFacts, platform: str, python: PythonTarget, words: str
) -> None:
    (reason,) = reasons(check_wheels([wheel(filename)], python, platform, machine))
    assert words in reason and filename in reason


def test_manylinux_tags_run_from_this_glibc_down_to_the_oldest() -> None:
    tags = accepted_platforms("linux-64", MachineFacts(None, glibc="2.17"))
    assert tags is not None
    assert tags[0] == "manylinux_2_17_x86_64" and tags[-1] == "linux_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_18_x86_64" not in tags
    aarch64 = accepted_platforms("linux-aarch64", MachineFacts(None, glibc="2.28"))
    assert aarch64 is not None and "manylinux_2_16_aarch64" not in aarch64
    assert "manylinux2014_aarch64" in aarch64 and "manylinux2010_aarch64" not in aarch64


def test_a_lock_with_wheels_but_no_python() -> None:
    (reason,) = reasons(check_wheels([wheel("pkg-1.0-py3-none-any.whl")], None, "linux-64", LINUX))
    assert "has pip packages (pkg) but no conda python package" in reason


def test_the_python_target_comes_from_the_locked_python_and_its_abi() -> None:
    from setup_tool.install.lockread import LockedPackage

    def conda(name: str, version: str, build: str) -> LockedPackage:
        return LockedPackage(name, version, build, f"https://x/{name}", "0" * 64, "", "linux-64")

    target = python_target(
        [conda("python", "3.13.9", "h_cp313t"), conda("python_abi", "3.13", "8_cp313t")]
    )
    assert target == PythonTarget((3, 13), "cp313t")
    assert target.site_packages == "lib/python3.13t/site-packages"
    assert python_target([conda("python", "3.12.12", "h_cpython")]) == PY312
    assert python_target([conda("numpy", "2.3.5", "py312")]) is None


@pytest.mark.parametrize(
    ("name", "version", "cuda"),
    [
        ("torch", "2.9.0+cu126", "12.6"),
        ("torch", "2.9.0+cu130", "13.0"),
        ("torch", "2.7.1+cu118", "11.8"),
        ("torch", "2.13.0+cpu", None),
        ("nvidia-cublas-cu12", "12.8.4.1", "12"),
        ("nvidia-cudnn-cu12", "9.10.2.21", "12"),
        ("nvidia-cuda-runtime-cu12", "12.8.90", "12.8"),
        ("nvidia-cuda-runtime", "13.0.96", "13.0"),
        ("cupy-cuda12x", "13.6.0", "12"),
        ("jax-cuda12-plugin", "0.7.2", "12"),
        ("nvidia-ml-py", "13.580.82", None),
        ("cuda-python", "13.0.1", None),
        ("numpy", "2.3.5", None),
    ],
)
def test_which_wheels_need_cuda(name: str, version: str, cuda: str | None) -> None:
    assert required_cuda(wheel(f"{name}-{version}-py3-none-any.whl", name, version)) == cuda


TORCH_CU126 = [
    wheel("torch-2.9.0+cu126-cp312-cp312-manylinux_2_28_x86_64.whl", "torch", "2.9.0+cu126"),
    wheel(
        "nvidia_cublas_cu12-12.6.4.1-py3-none-manylinux_2_27_x86_64.whl",
        "nvidia-cublas-cu12",
        "12.6.4.1",
    ),
]


def test_cuda_wheels_on_an_older_minor_driver_warn() -> None:
    check = check_wheels(TORCH_CU126, PY312, "linux-64", MachineFacts("12.4", "550.54.14", "2.28"))
    assert check.problems == ()
    (warning,) = check.warnings
    assert warning.startswith("torch 2.9.0+cu126: the NVIDIA driver supports CUDA 12.4")
    assert "minor-version compatibility" in warning
    assert "PTX JIT" in warning


def test_cuda_wheels_on_a_newer_driver_fit_silently() -> None:
    check = check_wheels(TORCH_CU126, PY312, "linux-64", MachineFacts("13.0", "580.65.06", "2.28"))
    assert check == type(check)()


@pytest.mark.parametrize(
    ("machine", "words", "fix"),
    [
        (
            MachineFacts(None, glibc="2.28"),
            "are CUDA 12.6 builds (torch 2.9.0+cu126) but this machine has no NVIDIA driver",
            "install an NVIDIA driver",
        ),
        (
            MachineFacts("11.8", "520.61.05", "2.28"),
            "need CUDA 12 (torch 2.9.0+cu126) but driver 520.61.05 supports CUDA 11.8",
            "update the NVIDIA driver to 525.60.13 or newer",
        ),
    ],
)
def test_cuda_wheels_without_a_fitting_driver_are_refused(
    machine: MachineFacts, words: str, fix: str
) -> None:
    (problem,) = check_wheels(TORCH_CU126, PY312, "linux-64", machine).problems
    assert words in problem.reason and fix in problem.fix


@pytest.mark.parametrize(
    "url",
    [
        "git+https://github.com/x/y.git@f337",
        "https://files.pythonhosted.org/packages/aa/y-0.0.1.tar.gz",
        "file:///home/me/src/y",
    ],
)
def test_a_source_entry_is_an_other_reason(url: str) -> None:
    source = LockedWheel("y", "0.0.1", url, "", "linux-64")
    assert not source.is_wheel
    (problem,) = check_wheels([source], PY312, "linux-64", LINUX).problems
    assert problem.kind == "other"
    assert f"pip package y 0.0.1 is a source, not a wheel ({url})" in problem.reason
