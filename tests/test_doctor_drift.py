"""Lock drift: conda-meta records against a real conda-lock file written by conda-lock itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from doctor_fixtures import MAIN, install, write_lock

from setup_tool.doctor.checks import drift_check
from setup_tool.doctor.drift import check_drift
from setup_tool.doctor.result import Status
from setup_tool.install.prefix import write_state


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_lock(tmp_path / "envs" / "locks" / "cpu.conda-lock.yml")
    return tmp_path


def test_matching_environment_is_clean(project: Path) -> None:
    drift = check_drift(install(project / ".envs" / "cpu", MAIN), project)
    assert (drift.state, drift.platform, drift.compared) == ("clean", "linux-64", 4)
    check = drift_check(drift)
    assert check.status is Status.passed
    assert "4 packages match cpu.conda-lock.yml (linux-64)" in check.detail


def test_changed_and_missing_packages_fail(project: Path) -> None:
    installed = [
        ("python", "3.12.8", "h9e4cc4f_1_cpython"),
        ("pytorch", "2.5.1", "cuda126_py312_h1234567_308"),  # another build
    ]
    drift = check_drift(install(project / ".envs" / "cpu", installed), project)
    assert drift.state == "drifted"
    assert [c.locked.name for c in drift.changed] == ["pytorch"]
    assert [p.name for p in drift.missing] == ["numpy"]  # pytest is dev-only: not required
    check = drift_check(drift)
    assert check.status is Status.failed
    assert "pytorch 2.5.1 cuda126_py312_h1234567_308 (locked 2.5.1 cpu_mkl" in check.detail
    assert check.fix is not None and "setup-tool install" in check.fix


def test_extra_packages_only_warn(project: Path) -> None:
    prefix = install(project / ".envs" / "cpu", [*MAIN, ("requests", "2.32.3", "pyhd8ed1ab_1")])
    check = drift_check(check_drift(prefix, project))
    assert check.status is Status.warned
    assert "1 not in the lock: requests 2.32.3" in check.detail


def test_noarch_records_do_not_decide_the_platform(project: Path) -> None:
    prefix = install(project / ".envs" / "cpu", MAIN)
    install(prefix, [("tzdata", "2024b", "hc8b5060_0")], subdir="noarch")
    drift = check_drift(prefix, project, fallback_platform="osx-arm64")
    assert drift.platform == "linux-64"


def test_pip_packages_in_the_lock_are_not_compared(tmp_path: Path) -> None:
    write_lock(tmp_path / "envs" / "locks" / "cpu.conda-lock.yml", pip=True)
    drift = check_drift(install(tmp_path / ".envs" / "cpu", MAIN), tmp_path)
    assert (drift.state, drift.pip_skipped) == ("clean", 1)
    assert "1 pip package(s) not compared" in drift_check(drift).detail


def test_the_installers_state_file_names_the_lock_and_categories(tmp_path: Path) -> None:
    lockfile = write_lock(tmp_path / "locks" / "team.conda-lock.yml")
    prefix = install(tmp_path / "somewhere" / "myenv", MAIN)
    state = {"lockfile": str(lockfile), "platform": "linux-64", "categories": ["main"]}
    write_state(prefix, state)
    drift = check_drift(prefix, tmp_path)
    assert (drift.state, drift.lockfile) == ("clean", lockfile)
    # Installed with the dev category too: pytest is now required, and missing.
    write_state(prefix, {**state, "categories": ["dev", "main"]})
    drift = check_drift(prefix, tmp_path)
    assert [p.name for p in drift.missing] == ["pytest"]


@pytest.mark.parametrize(
    ("prefix_name", "make_meta", "note"),
    [
        ("myenv", True, "no lock is recorded"),
        ("venv", False, "has no conda-meta/"),
    ],
)
def test_not_a_setup_tool_environment_is_skipped(
    tmp_path: Path, prefix_name: str, make_meta: bool, note: str
) -> None:
    prefix = tmp_path / prefix_name
    prefix.mkdir()
    if make_meta:
        install(prefix, MAIN)
    check = drift_check(check_drift(prefix, tmp_path))
    assert check.status is Status.skipped
    assert note in check.detail
    assert drift_check(check_drift(None, tmp_path)).status is Status.skipped


def test_missing_or_foreign_lock_is_a_warning(tmp_path: Path) -> None:
    prefix = install(tmp_path / ".envs" / "cuda", MAIN)
    check = drift_check(check_drift(prefix, tmp_path))
    assert check.status is Status.warned
    assert "cuda.conda-lock.yml does not exist" in check.detail
    write_lock(tmp_path / "envs" / "locks" / "cuda.conda-lock.yml", platform="linux-aarch64")
    check = drift_check(check_drift(prefix, tmp_path))
    assert check.status is Status.warned
    assert "no packages for linux-64 (it locks linux-aarch64)" in check.detail
    (tmp_path / "envs" / "locks" / "cuda.conda-lock.yml").write_text("version: 1\npackage: 3\n")
    assert "is not a conda-lock file" in check_drift(prefix, tmp_path).note


def test_without_conda_lock_the_check_is_skipped(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU box with only torch installed: the doctor still runs, and says why no lock check."""
    monkeypatch.setitem(sys.modules, "conda_lock.lockfile", None)
    drift = check_drift(install(project / ".envs" / "cpu", MAIN), project)
    assert drift.state == "skipped"
    assert "conda-lock is not installed" in drift.note
