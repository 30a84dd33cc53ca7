"""``lock --torch-from wheels``: PyTorch from PyTorch's wheel index inside the conda
environment, against a local copy of download.pytorch.org's layout (``/whl/cpu``,
``/whl/cu126``, ``/whl/cu130``, file names with ``%2B``) served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channel import LocalChannel, PackageSpec, serve_channel
from lock_pip_helpers import PIP_PACKAGE, channel_with_pip, parse, pip_entries
from wheel_index import build_index
from wheels import WheelSpec, build_wheel

from setup_tool.errors import UsageError
from setup_tool.lock import check_lock, lock_variant
from setup_tool.lock.torch_source import wheel_index
from setup_tool.variants import Variant

TORCH_REQUIRES = ("filelock", "typing-extensions>=4.10.0")
LINUX_TAGS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64")


def _torch(
    local: str, platforms: tuple[str, ...], requires: tuple[str, ...] = ()
) -> list[WheelSpec]:
    version = f"2.13.0+{local}" if local else "2.13.0"
    vision = f"0.28.0+{local}" if local else "0.28.0"
    specs = []
    for tag in platforms:
        abi = "none" if tag.startswith("macosx") else "cp312"
        specs.append(
            WheelSpec("torch", version, "cp312", abi, tag, requires=(*TORCH_REQUIRES, *requires))
        )
        specs.append(
            WheelSpec(
                "torchvision",
                vision,
                "cp312",
                "cp312",
                tag,
                requires=(f"torch=={version}", "numpy", "pillow>=5.3.0,!=8.3.*"),
            )
        )
    return specs


COMMON = [
    WheelSpec("filelock", "3.20.0"),
    WheelSpec("typing-extensions", "4.15.0"),
    WheelSpec("pillow", "12.0.0"),
]
NVIDIA = "; platform_system == 'Linux'"
INDEXES = {
    "cpu": [*_torch("cpu", LINUX_TAGS), *_torch("", ("macosx_11_0_arm64",)), *COMMON],
    "cu126": [
        *_torch("cu126", LINUX_TAGS, (f"nvidia-cublas-cu12==12.6.4.1{NVIDIA}",)),
        *(WheelSpec("nvidia-cublas-cu12", "12.6.4.1", "py3", "none", t) for t in LINUX_TAGS),
        *COMMON,
    ],
    "cu130": [
        *_torch("cu130", LINUX_TAGS, (f"nvidia-cublas==13.0.0.19{NVIDIA}",)),
        *(WheelSpec("nvidia-cublas", "13.0.0.19", "py3", "none", t) for t in LINUX_TAGS),
        *COMMON,
    ],
    "pypi": [*_torch("", ("macosx_11_0_arm64",)), *COMMON],
}


@pytest.fixture(scope="session")
def pip_channel(local_channel: LocalChannel, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test channel plus conda-forge's ``pip`` (``lock_pip_helpers.PIP_PACKAGE``)."""
    return channel_with_pip(local_channel, tmp_path_factory.mktemp("pip-channel"))


@pytest.fixture(scope="module")
def pytorch_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>/whl``: download.pytorch.org's layout, plus a ``/pypi``."""
    root = tmp_path_factory.mktemp("download.pytorch.org")
    built = tmp_path_factory.mktemp("torch-wheels")
    for name, specs in INDEXES.items():
        folder = built / name
        files = [build_wheel(folder, spec).path for spec in specs]
        build_index(root / "whl" / name, files, layout="pytorch")
    with serve_channel(root) as url:
        yield f"{url}/whl"


def lock(project: Path, channel: str, variant: Variant, base: str, **options: Any) -> Any:
    """Locked with torch from the local download.pytorch.org, and never from the real PyPI."""
    spec = project / "envs" / "base.yml"
    if "allow-pypi-requests" not in spec.read_text():
        spec.write_text(spec.read_text() + "allow-pypi-requests: false\n")
    return lock_variant(
        project,
        variant,
        channels=[channel],
        torch_from="wheels",
        environ={"SETUP_TOOL_TORCH_INDEX": base},
        **options,
    )


def test_cpu_wheels_from_the_cpu_index(project: Path, pip_channel: str, pytorch_org: str) -> None:
    result = lock(project, pip_channel, Variant.cpu, pytorch_org, pip_indexes=None)
    lock_file = parse(result.path)
    conda = {p.name for p in lock_file.package if p.manager == "conda" and p.platform == "linux-64"}
    assert not conda & {"pytorch", "torchvision", "pytorch-cpu", "pytorch-gpu"}
    assert {"python", "numpy", "pip"} <= conda  # numpy stays conda's: pip does not add one
    linux = pip_entries(lock_file, "linux-64")
    assert sorted(linux) == ["filelock", "pillow", "torch", "torchvision", "typing-extensions"]
    assert linux["torch"].version == "2.13.0+cpu"  # %2B decoded
    assert linux["torch"].url == (
        f"{pytorch_org}/cpu/torch-2.13.0%2Bcpu-cp312-cp312-manylinux_2_28_x86_64.whl"
    )
    assert linux["torchvision"].dependencies == {
        "numpy": "*",
        "pillow": "!=8.3.*,>=5.3.0",
        "torch": "==2.13.0+cpu",
    }
    osx = pip_entries(lock_file, "osx-arm64")
    assert osx["torch"].version == "2.13.0"
    assert osx["torch"].url.endswith("/cpu/torch-2.13.0-cp312-none-macosx_11_0_arm64.whl")
    custom = lock_file.metadata.custom_metadata
    assert custom["setup-tool.torch-from"] == "wheels"
    assert custom["setup-tool.pip-indexes"] == f"{pytorch_org}/cpu"
    summary = {p.platform: p for p in result.platforms}
    assert summary["linux-64"].pytorch == "2.13.0+cpu (pip)"
    header = result.path.read_text().split("\nversion:")[0]
    assert "--torch-from wheels" in header


def test_the_lock_remembers_where_torch_comes_from(
    project: Path, pip_channel: str, pytorch_org: str
) -> None:
    lock(project, pip_channel, Variant.cpu, pytorch_org)
    environ = {"SETUP_TOOL_TORCH_INDEX": pytorch_org, "SETUP_TOOL_CHANNEL": pip_channel}
    assert check_lock(project, Variant.cpu, environ=environ).up_to_date  # read from the lock
    other = check_lock(project, Variant.cpu, environ=environ, torch_from="conda-forge")
    assert {p.state for p in other.platforms} == {"torch"}
    assert (other.locked_torch_from, other.torch_from) == ("wheels", "conda-forge")
    assert "--torch-from" not in other.refresh


@pytest.mark.parametrize(("cuda", "index"), [("12.9", "cu126"), ("13.0", "cu130")])
def test_cuda_wheels_by_driver(
    project: Path, pip_channel: str, pytorch_org: str, cuda: str, index: str
) -> None:
    result = lock(project, pip_channel, Variant.cuda, pytorch_org, cuda=cuda)
    lock_file = parse(result.path)
    for platform in ("linux-64", "linux-aarch64"):
        pip = pip_entries(lock_file, platform)
        assert pip["torch"].version == f"2.13.0+{index}"
        assert pip["torch"].url.startswith(f"{pytorch_org}/{index}/torch-2.13.0%2B{index}-")
        runtime = "nvidia-cublas-cu12" if index == "cu126" else "nvidia-cublas"
        assert runtime in pip and runtime in pip["torch"].dependencies
    conda = {p.name for p in lock_file.package if p.manager == "conda"}
    assert "cuda-version" not in conda  # the CUDA runtime comes as nvidia-* wheels


def test_mps_wheels_from_pypi(project: Path, pip_channel: str, pytorch_org: str) -> None:
    """PyPI holds the macOS wheels; here a local stand-in for it replaces PyPI."""
    result = lock(
        project, pip_channel, Variant.mps, pytorch_org, pip_indexes=[f"{pytorch_org}/pypi"]
    )
    osx = pip_entries(parse(result.path), "osx-arm64")
    assert osx["torch"].url == f"{pytorch_org}/pypi/torch-2.13.0-cp312-none-macosx_11_0_arm64.whl"


def test_index_choice_per_variant() -> None:
    assert wheel_index(Variant.cpu, None) == "https://download.pytorch.org/whl/cpu"
    assert wheel_index(Variant.mps, None) is None
    assert wheel_index(Variant.cuda, "12.6") == "https://download.pytorch.org/whl/cu126"
    assert wheel_index(Variant.cuda, "13.2") == "https://download.pytorch.org/whl/cu130"
    with pytest.raises(
        UsageError, match=r"no PyTorch CUDA wheel index runs on a driver for CUDA 11\.8"
    ):
        wheel_index(Variant.cuda, "11.8")


def test_a_conda_package_that_needs_conda_pytorch_is_refused(
    project: Path, local_channel: LocalChannel, pytorch_org: str, tmp_path: Path
) -> None:
    """It would bring conda's pytorch back beside the wheel: say which package does."""
    lightning = PackageSpec(
        "lightning",
        "2.5.0",
        "pyhd8ed1ab_0",
        0,
        "noarch",
        depends=("python >=3.9", "pytorch >=2.1"),
        noarch="python",
    )
    channel = local_channel.copy_to(tmp_path / "channel").add([PIP_PACKAGE, lightning])
    cpu = project / "envs" / "cpu.yml"
    cpu.write_text(cpu.read_text() + "  - lightning\n")
    with pytest.raises(UsageError) as info:
        lock(project, channel.url, Variant.cpu, pytorch_org)
    assert str(info.value).startswith(
        "torch comes from wheels, but conda's pytorch is in the cpu lock for linux-64, needed by "
        "lightning"
    )


def test_unknown_torch_source(project: Path, pip_channel: str) -> None:
    with pytest.raises(UsageError, match="--torch-from 'bogus' is not a PyTorch source"):
        lock_variant(project, Variant.cpu, channels=[pip_channel], torch_from="bogus")
