"""A torch that imports but does not work: the doctor names it and the repair that fits.

The test channel's ``pytorch`` package is such a torch (a stand-in module with only
``__version__`` and ``version.cuda``, tests/channel.py), so an environment installed from it,
by the real installer, is the broken environment; a tampered copy and a namespace package
stand for the other ways a torch breaks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from setup_tool.doctor.broken_torch import broken_torch_fix
from setup_tool.doctor.drift import Change, Drift, Package
from setup_tool.doctor.facts import ProbeFacts, TorchBuild, Torchvision


def install_stub_env(prefix: Path, lockfile: Path) -> Path:
    """The cpu variant of the locked test project, installed with ``setup-tool install``."""
    from typer.testing import CliRunner

    from setup_tool.cli import app

    result = CliRunner().invoke(
        app, ["install", "--lockfile", str(lockfile), "--prefix", str(prefix)]
    )
    assert result.exit_code == 0, result.output
    return prefix


@pytest.fixture(scope="module")
def stub_env(tmp_path_factory: pytest.TempPathFactory, locked_project: Path) -> Path:
    """Shared and read-only; a test that edits it installs its own."""
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    return install_stub_env(tmp_path_factory.mktemp("stub") / "env", lockfile)


def doctor_json(cli, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    result = cli("doctor", *args, "--expect", "cpu", "--json")
    return result.exit_code, json.loads(result.stdout)


def by_id(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["id"]: c for c in report["checks"]}


def test_a_stub_torch_is_named_broken_not_a_probe_bug(cli, stub_env: Path) -> None:  # type: ignore[no-untyped-def]
    code, report = doctor_json(cli, "--prefix", str(stub_env))
    checks = by_id(report)
    assert code == 6
    assert "probe" not in checks  # not "the probe hit a bug ... report it"
    torch = checks["torch"]
    assert torch["status"] == "fail"
    assert "imports, but it is not a working PyTorch: it has no torch.tensor" in torch["detail"]
    assert str(stub_env) in torch["detail"]
    # The lock check passes, so the fix must not be "reinstall from its lock": the package
    # itself is the stand-in, and the channel it came from is named.
    assert checks["lock"]["status"] == "pass"
    assert "packages match" in checks["lock"]["detail"]
    assert "reinstall" not in torch["fix"]
    assert "the environment matches its lock" in torch["fix"]
    assert "pytorch 2.13.0 cpu_mkl_py312_" in torch["fix"]
    assert "file://" in torch["fix"]
    assert "setup-tool lock --channel conda-forge" in torch["fix"]


def test_torchvision_beside_a_broken_torch_is_installed_not_missing(cli, stub_env: Path) -> None:  # type: ignore[no-untyped-def]
    _, report = doctor_json(cli, "--prefix", str(stub_env))
    vision = by_id(report)["torchvision"]
    assert vision["status"] == "skip"
    assert "is not installed" not in vision["detail"]
    assert vision["detail"].startswith("torchvision 0.28.0 is installed; not checked")


def test_torch_files_changed_after_install_get_recreate_not_reinstall(
    cli,  # type: ignore[no-untyped-def]
    cpu_lock: Path,
    tmp_path: Path,
) -> None:
    prefix = install_stub_env(tmp_path / "env", cpu_lock)
    init = next(prefix.glob("lib/python*/site-packages/torch/__init__.py"))
    init.write_text(init.read_text() + "\n# edited by hand\n")
    _, report = doctor_json(cli, "--prefix", str(prefix))
    torch = by_id(report)["torch"]
    assert "pytorch's files were changed after it was installed (1 changed:" in torch["fix"]
    assert "site-packages/torch/__init__.py" in torch["fix"]
    assert f"rm -rf {prefix}" in torch["fix"]


def test_a_directory_named_torch_without_init(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Python without torch (-S: no site-packages) and a stray ``torch/`` directory on its
    path: ``import torch`` succeeds and gives a namespace package."""
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    code, report = doctor_json(cli, "--python", str(python))
    torch = by_id(report)["torch"]
    assert code == 6
    assert "is a directory without __init__.py (a namespace package)" in torch["detail"]
    assert f"remove the directory {tmp_path / 'torch'}" in torch["fix"]
    assert "probe" not in by_id(report)


def _broken(version: str = "2.13.0") -> ProbeFacts:
    return ProbeFacts(
        python_version="3.12.8",
        python_executable="/env/bin/python",
        python_prefix="/env",
        system="linux",
        machine="x86_64",
        torch=TorchBuild(
            version, file="/env/t/__init__.py", path="/env/t", missing_api=("torch.tensor",)
        ),
        torchvision=Torchvision(True, "0.28.0", ops_checked=False),
    )


def test_a_drifted_torch_is_reinstalled_from_the_lock() -> None:
    locked = Package("pytorch", "2.13.0", "cpu_mkl_py312_h0_102")
    drift = Drift(
        "drifted",
        prefix=Path("/env"),
        lockfile=Path("/p/envs/locks/cpu.conda-lock.yml"),
        changed=(Change(locked, Package("pytorch", "2.12.0", "cpu_mkl_py312_h1_100")),),
    )
    fix = broken_torch_fix(_broken(), drift, None)
    assert fix.startswith("the environment left its lock (see lock below): reinstall from the")
    assert "`setup-tool install --prefix /env --lockfile /p/envs/locks/cpu.conda-lock.yml`" in fix


def test_outside_conda_torch_is_reinstalled_with_pip() -> None:
    fix = broken_torch_fix(_broken(), None, None)
    assert fix == (
        "reinstall torch in that environment: `/env/bin/python -m pip install "
        "--force-reinstall --no-deps torch==2.13.0`"
    )


FAKE_TORCH = """
import types
__version__ = "2.9.0"
version = types.SimpleNamespace(cuda=None, hip=None)
tensor = zeros = randn = device = Generator = object
float32 = float64 = "dtype"
nn = types.SimpleNamespace(functional=types.SimpleNamespace(conv2d=None))
backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(is_available=lambda: False))
ops = object()


def _is_available():
    raise RuntimeError("CUDA driver initialization failed inside torch")


cuda = types.SimpleNamespace(is_available=_is_available, get_arch_list=lambda: [])
"""


def test_an_error_raised_inside_torch_is_torch_broken_not_a_probe_bug(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(FAKE_TORCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    code, report = doctor_json(cli, "--python", str(python))
    assert report["probe"]["probe"]["error_origin"] == "torch"
    torch = by_id(report)["torch"]
    assert code == 6
    assert "probe" not in by_id(report)
    assert torch["detail"] == (
        f"torch 2.9.0 at {tmp_path / 'torch'} fails inside its own code: RuntimeError: CUDA "
        "driver initialization failed inside torch"
    )
    assert "pip install --force-reinstall --no-deps torch==2.9.0" in torch["fix"]


def test_a_bug_in_the_probe_itself_is_still_reported_as_one() -> None:
    from dataclasses import replace

    from setup_tool.doctor.checks import Evidence, judge
    from setup_tool.doctor.launch import ProbeRun
    from setup_tool.interpreter import Interpreter
    from setup_tool.variants import Variant

    working = replace(_broken().torch, missing_api=())  # type: ignore[type-var]
    facts = replace(
        _broken(), torch=working, probe_error="KeyError: 'index'", probe_error_origin="probe"
    )
    run = ProbeRun(("python", "probe.py"), facts)
    result = judge(
        Evidence(
            Variant.cpu,
            "--expect",
            None,
            Interpreter(Path("/env/bin/python"), "--python"),
            None,
            run,
        )
    )
    checks = {c.id: c for c in result.checks}
    assert checks["probe"].detail == "the probe hit a bug and stopped early: KeyError: 'index'"
    assert checks["torch"].status.value == "pass"
    assert "the probe stopped early" in checks["torchvision"].detail
