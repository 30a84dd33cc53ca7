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
        # The parser raises this one without a context: the hint still names the command.
        (
            ["install", "--variant"],
            "Option '--variant' requires an argument.",
            "setup-tool install",
        ),
        (["lock", "--check", "--channel"], "Option '--channel' requires", "setup-tool lock"),
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


def test_the_console_script_loads_only_the_command_it_runs() -> None:
    """A no-op ``install`` does not pay for importing lock, pipeline, doctor and bench (a
    fresh interpreter: this one has every command loaded already)."""
    probe = (
        "import sys; from setup_tool import cli\n"
        "cli.load(cli._commands_for(['-v', 'install', '--dry-run']))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('setup_tool'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "setup_tool.cli.install" in loaded
    heavy = {"setup_tool.cli.env", "setup_tool.cli.lock", "setup_tool.pipeline"}
    assert not loaded & heavy


@pytest.mark.parametrize("argv", [[], ["--help"], ["-v"], ["bogus"], ["--version"]])
def test_help_and_unknown_commands_load_every_command(argv: list[str]) -> None:
    from setup_tool import cli

    assert tuple(cli._commands_for(argv)) == cli.COMMANDS


COMMANDS = ["env", "detect", "lock", "install", "doctor", "bench", "report"]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_values_not_python_types(cli: Cli, command: str) -> None:
    """Flags take no value (no ``<bool>``), a repeatable option takes one value each time (no
    ``<list[str]>``), and schemas are where the docs are (docs/, not README.md)."""
    text = cli.ok(*filter(None, [command]), "--help", env={"COLUMNS": "200"}).output
    assert "Usage:" in text
    assert "<bool>" not in text and "README.md" not in text
    options = [line for line in text.splitlines() if line.startswith("│ --")]
    assert options and not [line for line in options if "list[" in line]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_explained(command: str) -> None:
    import typer.main

    from setup_tool.cli import app

    group = typer.main.get_command(app)
    params = group.commands[command].params  # type: ignore[attr-defined]
    unexplained = [p.opts for p in params if p.param_type_name == "option" and not p.help]
    assert unexplained == []


_INTERRUPT_IMPORT = """
import sys

class Interrupt:  # Ctrl-C while the commands are being imported (a slow start)
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["setup-tool", "lock", "--check"]
from setup_tool.cli import main
main()
"""

_INTERRUPT_OUTSIDE_A_COMMAND = """
import setup_tool.cli as cli

def interrupted():
    raise KeyboardInterrupt

cli.load = lambda commands: interrupted  # Ctrl-C in typer's parsing, before a command runs
cli.main()
"""


@pytest.mark.parametrize(
    "code",
    [
        # setup_tool.cli's own imports, then the command's (main imports only the one it runs)
        _INTERRUPT_IMPORT.replace("MODULE", repr("setup_tool.cli.terminal")),
        _INTERRUPT_IMPORT.replace("MODULE", repr("setup_tool.cli.lock")),
        _INTERRUPT_OUTSIDE_A_COMMAND,
    ],
    ids=["importing-the-cli", "importing-the-command", "parsing"],
)
def test_ctrl_c_before_a_command_runs_is_one_line_and_exit_130(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == ExitCode.INTERRUPTED, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == ["error: interrupted: nothing was changed"]
