"""The ``setup-tool`` command line: typer commands that call command modules and render results.

Importing a command module (``setup_tool.cli.<command>``) registers its command on the typer
app. ``main`` (the console script) imports only the command it runs: every command module
pulls in its core (lock, install, pipeline...), and importing all of them took longer than a
no-op ``install`` itself (0.9 s of the 1.5 s it took on a loaded 2-core machine;
``docs/PERFORMANCE.md``). ``from setup_tool.cli import app`` gives the app with every command
(what tests and other callers use); ``--help`` and unknown commands load them all too.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

# Printed for a Ctrl-C that comes before any command ran (the commands' own is in cli/app.py).
_INTERRUPTED = "error: interrupted: nothing was changed\n"

try:
    import typer

    from setup_tool.cli import app as _app_module
    from setup_tool.errors import ExitCode
except KeyboardInterrupt:  # Ctrl-C while starting up (imports take seconds on a busy machine)
    sys.stderr.write(_INTERRUPTED)
    raise SystemExit(130) from None  # ExitCode.INTERRUPTED, which may not be imported yet

# The import above binds this package's attribute `app` to the submodule; drop that binding,
# so that `from setup_tool.cli import app` reaches __getattr__ and gets the typer app, loaded.
globals().pop("app", None)

# --help lists the commands in this order, the workflow's.
COMMANDS = ("env", "detect", "lock", "install", "doctor", "bench", "report")

__all__ = ["COMMANDS", "app", "load", "main"]


def load(commands: Sequence[str] = COMMANDS) -> typer.Typer:
    """The typer app with ``commands`` registered (all of them by default)."""
    for name in commands:
        importlib.import_module(f"setup_tool.cli.{name}")
    return _app_module.app


def __getattr__(name: str) -> Any:
    if name == "app":
        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _commands_for(argv: Sequence[str]) -> Sequence[str]:
    """The one command ``argv`` runs, or all of them (``--help``, no command, a typo). The
    group's own options (``--verbose``, ``--version``, ``--help``) take no value."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return (command,) if command in COMMANDS else COMMANDS


def main() -> None:
    """Console-script entry point."""
    code = 0
    try:
        load(_commands_for(sys.argv[1:]))()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # while the command is imported, or in typer's parsing
        sys.stderr.write(_INTERRUPTED)
        code = ExitCode.INTERRUPTED
    except BaseException:
        traceback.print_exc()  # a bug: keep its traceback
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if "rattler" in sys.modules:
        # py-rattler 0.28's tokio threads can crash the interpreter while it finalizes
        # (SIGSEGV, or SIGABRT "PyGILState_Release ... finalizing", in ~25% of processes
        # that made one py-rattler call: scripts/repro-rattler-shutdown.py; upstream:
        # PyO3/pyo3-async-runtimes#40). Everything is flushed and nothing is left to clean
        # up (downloads are joined, see install/download.py), so skip finalization rather
        # than turn a success into exit code 139. Re-run the script after a py-rattler
        # upgrade: this goes when it stops crashing.
        os._exit(code)
    sys.exit(code)
