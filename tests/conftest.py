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
