"""``setup_tool.pipeline``: env's detect → lock → install → doctor as results and events, without
the CLI, against the local channel (``tests/channel.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from setup_tool.errors import ExitCode, LockfileMismatch
from setup_tool.install.progress import Progress
from setup_tool.pipeline import EnvRequest, PipelineEvents, run_env
from setup_tool.variants import Variant, VariantChoice


class Recorder(PipelineEvents):
    """Keeps the name of every event, in order, and what it carried."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def detected(self, step: Any) -> None:
        self.events.append(("detected", step))

    def locking(self, check: Any) -> None:
        self.events.append(("locking", check))

    def locked(self, step: Any) -> None:
        self.events.append(("locked", step))

    def install_progress(self) -> Progress:
        self.events.append(("install_progress", None))
        return Progress()

    def installed(self, result: Any) -> None:
        self.events.append(("installed", result))

    def doctor_started(self) -> None:
        self.events.append(("doctor_started", None))

    def doctor_finished(self, result: Any) -> None:
        self.events.append(("doctor_finished", result))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _request(project: Path, channel_url: str, **changes: Any) -> EnvRequest:
    options: dict[str, Any] = {
        "root": project,
        "variant": VariantChoice.cpu,
        "channels": (channel_url,),
        "doctor": False,
    }
    options.update(changes)
    # conftest has cleaned os.environ and pointed SETUP_TOOL_CACHE at this test's tmp_path.
    options["environ"] = {**os.environ, **changes.get("environ", {})}
    return EnvRequest(**options)


def test_a_first_run_locks_and_installs_and_a_second_changes_nothing(
    project: Path, channel_url: str
) -> None:
    first = Recorder()
    result = run_env(_request(project, channel_url), first)
    assert first.names == ["detected", "locking", "locked", "install_progress", "installed"]
    assert result.detect.variant is Variant.cpu
    assert result.lock.relocked and result.lock.check.problem == "missing"
    assert result.lock.lockfile == project / "envs/locks/cpu.conda-lock.yml"
    assert result.lock.lockfile.is_file()
    assert result.lock.cuda is None  # a CPU lock holds no cuda-version
    assert result.install.status == "installed"
    assert result.install.prefix == project / ".envs/cpu"
    assert result.doctor is None and result.exit_code is ExitCode.OK

    second = Recorder()
    again = run_env(_request(project, channel_url), second)
    assert second.names == ["detected", "locked", "install_progress", "installed"]
    assert not again.lock.relocked and again.lock.check.up_to_date
    assert again.install.status == "up-to-date"


def test_the_doctor_runs_in_the_installed_environment_and_sets_the_exit_code(
    project: Path, channel_url: str
) -> None:
    """The test channel's torch is a stub, so the placement check fails (exit 6): a result of
    the doctor step, not an error of the pipeline."""
    recorder = Recorder()
    result = run_env(_request(project, channel_url, doctor=True), recorder)
    assert recorder.names[-2:] == ["doctor_started", "doctor_finished"]
    assert result.doctor is not None
    assert result.doctor.interpreter is not None
    assert result.doctor.interpreter.python == project / ".envs/cpu/bin/python"
    assert result.exit_code is ExitCode.DOCTOR_FAILED


@pytest.mark.parametrize("driver", ["12.9", "13.0"])
def test_a_cuda_lock_names_its_own_cuda_whatever_the_driver(
    project: Path, channel_url: str, driver: str
) -> None:
    """The lock is the one source of truth for the CUDA of the environment: envs/cuda.yml
    solves for __cuda 12.9, so a 13.0 driver gets (and is told about) the 12.9 builds."""
    request = _request(
        project, channel_url, variant=VariantChoice.cuda, environ={"CONDA_OVERRIDE_CUDA": driver}
    )
    result = run_env(request)
    assert result.lock.cuda == "12.9"
    assert result.install.status == "installed"
    # An up-to-date lock is read back for the same answer.
    assert run_env(request).lock.cuda == "12.9"


def test_a_cuda_lock_without_a_driver_stops_at_the_install_and_names_the_locks_cuda(
    project: Path, channel_url: str
) -> None:
    recorder = Recorder()
    request = _request(
        project, channel_url, variant=VariantChoice.cuda, environ={"CONDA_OVERRIDE_CUDA": ""}
    )
    with pytest.raises(LockfileMismatch, match=r"cuda-version 12\.9"):
        run_env(request, recorder)
    locked = dict(recorder.events)["locked"]
    assert locked.cuda == "12.9"
    assert "installed" not in recorder.names
    assert not (project / ".envs/cuda").exists()
