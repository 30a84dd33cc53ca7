"""The top-level command line: usage errors anywhere (the group's own options included) are one
``error:`` line and a ``hint:`` line with exit code 2, never typer's boxed panel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli

from setup_tool.errors import ExitCode


@pytest.mark.parametrize(
    ("argv", "error", "command"),
    [
        (["--bogus"], "No such option: --bogus", "setup-tool"),
        (["--bogus", "install"], "No such option: --bogus", "setup-tool"),
        (["-x"], "No such option: -x", "setup-tool"),
        (["bogus"], "No such command 'bogus'.", "setup-tool"),
        (["install", "--bogus"], "No such option: --bogus", "setup-tool install"),
    ],
)
def test_usage_errors_are_one_error_line_and_a_hint(
    argv: list[str], error: str, command: str
) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("setup-tool")), *argv],  # the console script
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"error: {error}"), done.stderr
    assert lines[1] == f"hint: see `{command} --help`"


def test_in_process_runner_sees_the_same(cli: Cli) -> None:
    result = cli("--bogus")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: No such option: --bogus")
    assert "╭" not in result.output and "Usage:" not in result.output
