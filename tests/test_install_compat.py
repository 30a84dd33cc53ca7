"""The machine-vs-lock check: a lock that cannot run here is refused with one line and a fix,
exit 5, before anything is downloaded; on our locks and on conda-lock files from elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from install_helpers import snapshot

from setup_tool.errors import ExitCode
from setup_tool.install.compat import MachineFacts, check_machine, required_cuda
from setup_tool.install.lockread import read_locked_platform


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETUP_TOOL_CACHE", str(tmp_path / "cache"))


def _refused(cli, lockfile: Path, tmp_path: Path, env: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """Run an install that must be refused; check that it wrote and downloaded nothing."""
    prefix = tmp_path / "envs" / "env"
    before = snapshot(tmp_path)
    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(prefix), env=env)
    assert result.exit_code == ExitCode.LOCK_MISMATCH == 5, result.output
    assert snapshot(tmp_path) == before  # no cache, no prefix, no lock file
    assert not (tmp_path / "cache").exists() and not prefix.parent.exists()
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 2, result.stderr  # one line of reason, one of fix
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    return "\n".join(lines)


def test_cuda_lock_on_a_machine_without_driver(cli, locked_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lockfile = locked_project / "envs" / "locks" / "cuda.conda-lock.yml"
    # An empty CONDA_OVERRIDE_CUDA means "no CUDA", as conda reads it (and this VM has no driver).
    text = _refused(cli, lockfile, tmp_path, {"CONDA_OVERRIDE_CUDA": ""})
    assert (
        "error: cuda.conda-lock.yml does not fit this machine: the lock's PyTorch is a CUDA build "
        "(cuda-version 12.9 needs CUDA 12.9) but this machine has no NVIDIA driver"
    ) in text
    assert "hint: install an NVIDIA driver, or install the cpu variant instead" in text
    assert "or set CONDA_OVERRIDE_CUDA=12.9 if you know the driver supports it" in text


def test_cuda_lock_with_a_driver_too_old(cli, locked_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lockfile = locked_project / "envs" / "locks" / "cuda.conda-lock.yml"
    text = _refused(cli, lockfile, tmp_path, {"CONDA_OVERRIDE_CUDA": "12.4"})
    assert "the lock needs CUDA 12.9 (cuda-version 12.9) but the driver supports CUDA 12.4" in text
    assert "hint: update the NVIDIA driver to 575.51.03 or newer, or install the cpu" in text


def test_glibc_too_old_names_the_strictest_package(
    cli, locked_project: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    text = _refused(cli, lockfile, tmp_path, {"CONDA_OVERRIDE_GLIBC": "2.12"})
    # numpy, python... need 2.17 and pytorch 2.28: the fix must name what fixes them all.
    assert "pytorch needs glibc >=2.28,<3.0.a0 but this machine has glibc 2.12" in text
    assert "hint: use a machine or distribution with glibc >=2.28,<3.0.a0" in text
    fits = _machine_check(lockfile, MachineFacts(driver_cuda=None, glibc="2.28"))
    assert fits == []


def test_lock_without_this_platform(cli, locked_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lockfile = locked_project / "envs" / "locks" / "mps.conda-lock.yml"
    text = _refused(cli, lockfile, tmp_path, {})
    assert "has no packages for this machine's platform linux-64 (it has: osx-arm64)" in text
    assert "hint: add linux-64 to the variant's platforms and relock" in text


def test_install_api_refuses_before_touching_anything(locked_project: Path, tmp_path: Path) -> None:
    """The same check through the Python API, with machine facts given directly."""
    from setup_tool.errors import LockfileMismatch
    from setup_tool.install import InstallRequest, install

    request = InstallRequest(
        lockfile=locked_project / "envs" / "locks" / "cuda.conda-lock.yml",
        prefix=tmp_path / "env",
        platform="linux-64",
        machine=MachineFacts(driver_cuda=None, glibc="2.36"),
        cache_root=tmp_path / "cache",
    )
    with pytest.raises(LockfileMismatch, match="this machine has no NVIDIA driver") as refused:
        install(request)
    assert refused.value.exit_code == 5
    assert list(tmp_path.iterdir()) == []


def _machine_check(lockfile: Path, machine: MachineFacts) -> list[str]:
    locked = read_locked_platform(lockfile, "linux-64")
    return [f"{m.reason} | {m.fix}" for m in check_machine(locked, machine)]


# --- conda-lock files written elsewhere ---------------------------------------------------------

# As conda-lock 1.x writes them (v1 format, no `build` key: the build is in the file name),
# for a project on the pytorch channel: its CUDA builds depend on cudatoolkit and
# pytorch-mutex, never on __cuda.
PYTORCH_CHANNEL_LOCK = """\
# This lock file was generated by conda-lock (https://github.com/conda/conda-lock). DO NOT EDIT!
version: 1
metadata:
  content_hash:
    linux-64: 5b5b4d2d0f1a0d3cba3a9b1f6d3a0c2b8f0c1e5e4d6b2a7c9e8f1d0a3b4c5d6e
  channels:
  - url: pytorch
    used_env_vars: []
  - url: conda-forge
    used_env_vars: []
  platforms:
  - linux-64
  sources:
  - environment.yml
package:
- name: cudatoolkit
  version: 11.3.1
  manager: conda
  platform: linux-64
  dependencies:
    __glibc: '>=2.17,<3.0.a0'
  url: https://conda.anaconda.org/conda-forge/linux-64/cudatoolkit-11.3.1-h9edb442_10.tar.bz2
  hash:
    md5: 2de9f5d4d1a3b4d1c2f5e6a7b8c9d0e1
    sha256: 0c5a4bd6c5d4a3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a
  category: main
  optional: false
- name: python
  version: 3.9.13
  manager: conda
  platform: linux-64
  dependencies:
    __glibc: '>=2.17,<3.0.a0'
  url: https://conda.anaconda.org/conda-forge/linux-64/python-3.9.13-h2660328_0_cpython.tar.bz2
  hash:
    md5: 1e2b1f9c4d8a7e6f5a4b3c2d1e0f9a8b
    sha256: 1d5b2f6c1a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c
  category: main
  optional: false
- name: pytorch
  version: 1.12.1
  manager: conda
  platform: linux-64
  dependencies:
    cudatoolkit: '>=11.3,<11.4'
    python: '>=3.9,<3.10.0a0'
    pytorch-mutex: 1.0 cuda
  url: https://conda.anaconda.org/pytorch/linux-64/pytorch-1.12.1-py3.9_cuda11.3_cudnn8.3.2_0.tar.bz2
  hash:
    md5: 3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c
    sha256: 2e6c3a7d2b0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d
  category: main
  optional: false
- name: pytorch-mutex
  version: '1.0'
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://conda.anaconda.org/pytorch/noarch/pytorch-mutex-1.0-cuda.tar.bz2
  hash:
    md5: a948316e36fb5b11223b3fcfa93f8358
    sha256: 3f7d4b8e3c1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e
  category: main
  optional: false
"""


CONDA_FORGE_1X_LOCK = """\
version: 1
metadata:
  content_hash:
    linux-64: 9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0
  channels:
  - url: conda-forge
    used_env_vars: []
  platforms:
  - linux-64
  sources:
  - environment.yml
package:
- name: cudatoolkit
  version: 11.8.0
  manager: conda
  platform: linux-64
  dependencies:
    __glibc: '>=2.17,<3.0.a0'
  url: https://conda.anaconda.org/conda-forge/linux-64/cudatoolkit-11.8.0-h37601d7_11.conda
  hash:
    md5: 9f8e7d6c5b4a39281706f5e4d3c2b1a0
    sha256: 4a8e5c9f4d2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f
  build: h37601d7_11
  category: main
  optional: false
- name: pytorch
  version: 1.13.1
  manager: conda
  platform: linux-64
  dependencies:
    __cuda: ''
    __glibc: '>=2.17,<3.0.a0'
    cudatoolkit: '>=11.2,<12'
  url: https://conda.anaconda.org/conda-forge/linux-64/pytorch-1.13.1-BUILD.conda
  hash:
    md5: 8e7d6c5b4a39281706f5e4d3c2b1a09f
    sha256: 5b9f6d0a5e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a
  build: BUILD
  category: main
  optional: false
"""


def _conda_forge_1x_lock(pytorch_build: str, depends_cuda: bool) -> str:
    """conda-forge's PyTorch 1.13 era: builds ``cuda112py310h…`` (or ``cpu_py310h…``) with
    cudatoolkit; ``__cuda`` in the dependencies when ``depends_cuda``."""
    text = CONDA_FORGE_1X_LOCK.replace("BUILD", pytorch_build)
    return text if depends_cuda else text.replace("    __cuda: ''\n", "")


NO_DRIVER = MachineFacts(driver_cuda=None, glibc="2.36")


def _write(tmp_path: Path, text: str, name: str = "conda-lock.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pytorch_channel_lock_without_cuda_dependency(tmp_path: Path) -> None:
    lockfile = _write(tmp_path, PYTORCH_CHANNEL_LOCK)
    locked = read_locked_platform(lockfile, "linux-64")
    assert locked.by_name()["pytorch"].build == "py3.9_cuda11.3_cudnn8.3.2_0"  # from the URL
    assert required_cuda(locked) == ("11.3", "cudatoolkit 11.3.1")

    (problem,) = _machine_check(lockfile, NO_DRIVER)
    assert "PyTorch is a CUDA build (cudatoolkit 11.3.1 needs CUDA 11.3)" in problem
    assert "no NVIDIA driver" in problem and "CONDA_OVERRIDE_CUDA=11.3" in problem
    (problem,) = _machine_check(lockfile, MachineFacts("11.2", "460.1", glibc="2.36"))
    assert "needs CUDA 11.3 (cudatoolkit 11.3.1) but driver 460.1 supports CUDA 11.2" in problem
    assert _machine_check(lockfile, MachineFacts(driver_cuda="12.4", glibc="2.36")) == []


@pytest.mark.parametrize(
    ("build", "depends_cuda", "needs"),
    [
        ("cuda112py310he33e0d6_200", True, ("11.8", "cudatoolkit 11.8.0")),
        ("cuda112py310he33e0d6_200", False, ("11.8", "cudatoolkit 11.8.0")),
        ("cpu_py310h07e7a1d_0", False, (None, None)),  # cudatoolkit alone needs no driver
    ],
    ids=["cuda-build-with-__cuda", "cuda-build-without-__cuda", "cpu-build-with-cudatoolkit"],
)
def test_conda_forge_cudatoolkit_era_locks(
    tmp_path: Path, build: str, depends_cuda: bool, needs: tuple[str | None, str | None]
) -> None:
    lockfile = _write(tmp_path, _conda_forge_1x_lock(build, depends_cuda))
    locked = read_locked_platform(lockfile, "linux-64")
    assert required_cuda(locked) == needs
    assert bool(_machine_check(lockfile, NO_DRIVER)) == (needs[0] is not None)
    assert _machine_check(lockfile, MachineFacts(driver_cuda="11.8", glibc="2.17")) == []


def test_foreign_cuda_lock_is_refused_by_the_cli_before_any_download(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    # Its URLs point at conda.anaconda.org: any download attempt would fail differently.
    lockfile = _write(tmp_path, PYTORCH_CHANNEL_LOCK, "foreign.conda-lock.yml")
    text = _refused(cli, lockfile, tmp_path, {"CONDA_OVERRIDE_CUDA": "11.2"})
    assert "foreign.conda-lock.yml does not fit this machine: the lock needs CUDA 11.3" in text


@pytest.mark.parametrize(
    ("build", "cuda"),
    [
        ("cuda129_mkl_py312_hc17a9ed_302", "12.9"),
        ("cuda130_generic_py313_h1234567_202", "13.0"),
        ("cuda112py310he33e0d6_200", "11.2"),
        ("py3.10_cuda11.8_cudnn8.7.0_0", "11.8"),
        ("cpu_mkl_py312_hebc1070_102", None),
        ("py3.9_cpu_0", None),
    ],
)
def test_cuda_version_in_pytorch_build_strings(build: str, cuda: str | None) -> None:
    from setup_tool.install.compat import _build_cuda

    assert _build_cuda(build) == cuda
