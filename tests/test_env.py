"""``setup-tool env`` against the stand-in channel (fast): detect → lock if needed → install.

Its torch is a stub, so the doctor's happy path is tested for real in ``tests/test_e2e.py``
(a real interpreter and the real torch CPU wheel); here the stub's failing check shows how env
reports a doctor that fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Cli


@pytest.fixture
def env_project(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SETUP_TOOL_PROJECT", str(project))
    monkeypatch.setenv("SETUP_TOOL_VARIANT", "cpu")
    return project


def test_env_locks_installs_and_is_a_no_op_the_second_time(
    cli: Cli, env_project: Path, channel_url: str
) -> None:
    first = cli.ok("env", "--channel", channel_url, "--no-doctor")
    assert "lock: envs/locks/cpu.conda-lock.yml is missing; locking" in first.stderr
    assert "install: .envs/cpu installed" in first.stderr
    assert (env_project / "envs/locks/cpu.conda-lock.yml").is_file()
    state = json.loads((env_project / ".envs/cpu/conda-meta/setup-tool.state").read_text())
    assert state["platform"] == "linux-64"
    assert "Use it:" in first.stdout

    second = cli.ok("env", "--channel", channel_url, "--no-doctor")
    assert "lock: envs/locks/cpu.conda-lock.yml is up to date" in second.stderr
    assert "install: .envs/cpu is up to date" in second.stderr


def test_a_failing_doctor_prints_its_report_and_sets_envs_exit_code(
    cli: Cli, env_project: Path, channel_url: str
) -> None:
    """The stand-in torch fails the placement check: env shows the doctor's report for the
    installed environment and exits 6 (the passing case: tests/test_e2e.py)."""
    result = cli("env", "--channel", channel_url)
    assert result.exit_code == 6, result.output
    assert str(env_project / ".envs/cpu/bin/python") in result.stdout
    assert "did not pass the placement check" in result.stdout


def test_env_with_an_unreachable_channel_fails_clearly(
    cli: Cli, env_project: Path, unreachable_channel_url: str
) -> None:
    result = cli("env", "--channel", unreachable_channel_url, "--no-doctor")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert not (env_project / ".envs/cpu").exists()


def test_env_for_cuda_without_a_driver_names_only_the_locks_cuda(
    cli, env_project, channel_url
) -> None:  # type: ignore[no-untyped-def]
    """One source of truth: envs/cuda.yml solves for __cuda 12.9, so every line names 12.9 (the
    lock's cuda-version), and no other CUDA version is assumed on the way."""
    result = cli(
        "env", "--variant", "cuda", "--channel", channel_url, env={"CONDA_OVERRIDE_CUDA": ""}
    )
    assert result.exit_code == 5, result.output
    assert "lock: envs/locks/cuda.conda-lock.yml (PyTorch for CUDA 12.9)" in result.stderr
    assert "error:" in result.stderr and "cuda-version 12.9" in result.stderr
    assert not re.search(r"CUDA 13|cuda-version 13|cuda130", result.output), result.output
    assert not (env_project / ".envs/cuda").exists()


def test_env_shows_what_install_warns_about(cli: Cli, env_project: Path, channel_url: str) -> None:
    """Install's warnings (here: a lock entry with only an md5) reach env's output too."""
    cli.ok("env", "--channel", channel_url, "--no-doctor")
    lockfile = env_project / "envs/locks/cpu.conda-lock.yml"
    text = lockfile.read_text()
    first_sha256 = re.search(r"\n    sha256: [0-9a-f]{64}", text)
    assert first_sha256 is not None
    lockfile.write_text(text[: first_sha256.start()] + text[first_sha256.end() :])
    result = cli.ok("env", "--no-doctor")
    assert "warning: 1 package(s) are verified by md5 only" in result.stderr, result.stderr


def test_env_says_a_cuda_minor_version_warning_once(
    cli: Cli, env_project: Path, channel_url: str
) -> None:
    """detect and install's machine check both see the 12.4 driver under a 12.9 build: once."""
    result = cli.ok(
        "env", "--variant", "cuda", "--channel", channel_url, "--no-doctor",
        env={"CONDA_OVERRIDE_CUDA": "12.4"},
    )  # fmt: skip
    lines = result.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("warning:") and "minor-version" in line]
    assert len(warnings) == 1, result.stderr
