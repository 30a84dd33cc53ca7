"""Bad pip input: each is one clear error line with a hint, a documented non-zero exit, and the
environment (and the cache) as it was. Kills while wheels install are in
``test_install_pip_crash.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from install_helpers import assert_no_leftovers, snapshot
from pip_support import SITE, build_demo, demo_lib, lock_with, run_env_python
from wheels import WheelSpec, build_wheel

from setup_tool.errors import ExitCode


@pytest.fixture
def installed(cli, cpu_lock: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """An environment installed from the lock with the two demo wheels."""
    prefix = tmp_path / "env"
    lock = lock_with(cpu_lock, tmp_path / "ok.yml", build_demo(tmp_path / "wheels"))
    cli.ok("install", "--lockfile", str(lock), "--prefix", str(prefix))
    return prefix


def refused(cli, lockfile: Path, prefix: Path, code: int, env=None):  # type: ignore[no-untyped-def]
    """Run install, expect ``code``; the error is one line with a hint and no traceback."""
    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(prefix), env=env)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    return errors[0]


def test_a_wheel_whose_bytes_differ_from_the_lock(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, installed: Path
) -> None:
    upgrade = [build_wheel(tmp_path / "other", demo_lib("1.1.0")), *build_demo(tmp_path / "w")[1:]]
    lock = lock_with(cpu_lock, tmp_path / "tampered.yml", upgrade)
    tool = upgrade[0].path
    tool.write_bytes(tool.read_bytes() + b"\0")  # the file changed after it was locked
    before = snapshot(installed)
    error = refused(cli, lock, installed, ExitCode.HASH_MISMATCH)
    assert "demo-lib 1.1.0 (demo_lib-1.1.0-py3-none-any.whl) has sha256" in error
    assert "nothing was installed" in error
    assert snapshot(installed) == before
    assert not list((tmp_path / "cache" / "archives").glob(f"*/{tool.name}"))  # not cached
    assert_no_leftovers(installed)


@pytest.mark.parametrize(
    ("spec", "env", "words"),
    [
        (
            WheelSpec("native", "1.0", "cp312", "cp312", "manylinux_2_17_aarch64"),
            {},
            "native 1.0 (native-1.0-cp312-cp312-manylinux_2_17_aarch64.whl) is built for "
            "manylinux_2_17_aarch64, not for this machine's linux-64",
        ),
        (
            WheelSpec("native", "1.0", "cp310", "cp310", "manylinux_2_17_x86_64"),
            {},
            "is built for cp310-cp310 but the environment's Python is Python 3.12 (cp312)",
        ),
        (
            WheelSpec("native", "1.0", "cp312", "cp312", "musllinux_1_2_x86_64"),
            {},
            "(musl libc; conda environments use glibc)",
        ),
        (
            WheelSpec("native", "1.0", "cp312", "abi3", "manylinux_2_34_x86_64"),
            {"CONDA_OVERRIDE_GLIBC": "2.28"},
            "needs glibc 2.34 (manylinux) but this machine has glibc 2.28",
        ),
        (
            WheelSpec("nvidia-cublas-cu12", "12.8.4.1", "py3", "none", "manylinux_2_27_x86_64"),
            {"CONDA_OVERRIDE_CUDA": ""},
            "the lock's pip packages are CUDA 12 builds (nvidia-cublas-cu12 12.8.4.1) but this "
            "machine has no NVIDIA driver",
        ),
    ],
    ids=["architecture", "python", "musl", "glibc", "cuda"],
)
def test_a_wheel_for_another_machine_or_python_is_refused_before_downloading(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, installed: Path, spec, env, words
) -> None:
    lock = lock_with(cpu_lock, tmp_path / "foreign.yml", [build_wheel(tmp_path / "w", spec)])
    before = snapshot(installed, tmp_path / "cache")
    error = refused(cli, lock, installed, ExitCode.LOCK_MISMATCH, env=env)
    assert words in error
    assert snapshot(installed, tmp_path / "cache") == before  # nothing fetched


def test_a_pip_dependency_that_is_not_in_the_lock(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, installed: Path
) -> None:
    wheels = build_demo(tmp_path / "other")
    lock = lock_with(cpu_lock, tmp_path / "cut.yml", wheels[1:])  # demo-lib is cut off
    before = snapshot(installed)
    error = refused(cli, lock, installed, ExitCode.ERROR)
    assert (
        "is incomplete for linux-64: pip package Demo.Tool depends on demo-lib, which the lock "
        "has neither as a pip nor as a conda package"
    ) in error
    assert snapshot(installed) == before


def test_a_pip_dependency_on_a_conda_package_by_its_pypi_name_is_complete(
    cli, cpu_lock: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """torch is conda-forge's pytorch: a wheel needing torch is satisfied by it."""
    spec = WheelSpec("torch-addon", "0.1", requires=("torch>=2", "typing-extensions"))
    lock = lock_with(cpu_lock, tmp_path / "addon.yml", [build_wheel(tmp_path / "w", spec)])
    prefix = tmp_path / "env"
    cli.ok("install", "--lockfile", str(lock), "--prefix", str(prefix))
    assert run_env_python(prefix, "import torch_addon; print(torch_addon.__version__)") == "0.1"


@pytest.mark.parametrize(
    "url",
    [
        "https://files.pythonhosted.org/packages/aa/bb/demo_lib-1.0.0.tar.gz",
        "git+https://github.com/example/demo-lib.git@f337da0f5c24af44eb982d7c39fe81e9bc1d5017",
    ],
    ids=["sdist", "git"],
)
def test_a_source_entry_is_refused_and_nothing_is_built(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, installed: Path, url: str
) -> None:
    wheels = build_demo(tmp_path / "other")
    lock = lock_with(cpu_lock, tmp_path / "sdist.yml", wheels, overrides={"demo-lib": {"url": url}})
    before = snapshot(installed, tmp_path / "cache")
    error = refused(cli, lock, installed, ExitCode.LOCK_MISMATCH)
    assert f"pip package demo-lib 1.0.0 is a source, not a wheel ({url})" in error
    assert "builds nothing from source" in error
    assert snapshot(installed, tmp_path / "cache") == before
    dry = cli("install", "--lockfile", str(lock), "--prefix", str(installed), "--dry-run")
    assert dry.exit_code == ExitCode.LOCK_MISMATCH and "a source, not a wheel" in dry.stderr


def test_a_source_entry_is_reported_after_the_machine_reasons(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path
) -> None:
    """Every reason, in order: a wheel for another architecture (platform) before the source."""
    foreign = build_wheel(
        tmp_path / "w", WheelSpec("native", "1.0", "cp312", "cp312", "manylinux_2_17_aarch64")
    )
    wheels = [*build_demo(tmp_path / "other"), foreign]
    git = "git+https://github.com/example/demo-lib.git@f337da0"
    lock = lock_with(cpu_lock, tmp_path / "two.yml", wheels, overrides={"demo-lib": {"url": git}})
    error = refused(cli, lock, tmp_path / "env", ExitCode.LOCK_MISMATCH)
    assert "(2 reasons)" in error
    assert error.index("manylinux_2_17_aarch64") < error.index("is a source, not a wheel")


@pytest.mark.parametrize(
    ("sha256", "words"),
    [("", "has no sha256, so it cannot be verified"), ("abc123", "has a malformed sha256")],
)
def test_a_wheel_without_a_usable_sha256(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, sha256: str, words: str
) -> None:
    wheels = build_demo(tmp_path / "w")
    lock = lock_with(cpu_lock, tmp_path / "nohash.yml", wheels)
    data = lock.read_text().replace(f"sha256: {wheels[0].sha256}", f"sha256: '{sha256}'")
    lock.write_text(data)
    error = refused(cli, lock, tmp_path / "env", ExitCode.ERROR)
    assert f"pip package demo-lib 1.0.0 {words}" in error
    assert not (tmp_path / "env").exists()


def test_a_wheel_that_overwrites_a_conda_packages_file(  # type: ignore[no-untyped-def]
    cli, cpu_lock: Path, tmp_path: Path, installed: Path
) -> None:
    clash = WheelSpec("numpy-shadow", "1.0", files=(("numpy/__init__.py", "shadowed = True\n"),))
    lock = lock_with(cpu_lock, tmp_path / "clash.yml", [build_wheel(tmp_path / "w", clash)])
    before = snapshot(installed)
    error = refused(cli, lock, installed, ExitCode.ERROR)
    assert (
        f"pip package numpy-shadow 1.0 would overwrite {SITE}/numpy/__init__.py, which another "
        "package of the lock installed; the previous environment is unchanged"
    ) in error
    assert snapshot(installed) == before
    assert_no_leftovers(installed)
