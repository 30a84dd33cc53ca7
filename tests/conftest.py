"""Shared fixtures: a clean environment for every test, and a typer CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from setup_tool.cli import app


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop every variable that changes setup-tool's decisions.

    A developer's shell (or CI's) may set SETUP_TOOL_VARIANT, CONDA_OVERRIDE_CUDA or
    CUDA_VISIBLE_DEVICES; tests must see the same baseline everywhere, and set what they test.
    """
    for name in list(os.environ):
        if name.startswith(("SETUP_TOOL_", "CONDA_OVERRIDE_")) or name == "CUDA_VISIBLE_DEVICES":
            monkeypatch.delenv(name)
    yield


class Cli:
    """Invokes the CLI in-process; ``ok`` asserts exit 0 and shows the output when it is not."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    def ok(self, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        result = self(*args, env=env)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


_session_status = {"code": 0}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization once py-rattler was used in-process.

    py-rattler 0.28's native threads can crash a finalizing interpreter (SIGSEGV or
    "PyGILState_Release ... finalizing", seen in up to half of the runs with pytest's
    faulthandler on), which would turn a green run into exit code 139. Same reason as
    ``setup_tool.cli.main``: everything is reported and flushed by now.
    """
    import sys

    if "rattler" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_status["code"])
