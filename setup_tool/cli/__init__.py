"""The ``setup-tool`` command line: typer commands that call command modules and render results.

Importing a command module registers its command on ``app``; the order here is the order
``--help`` lists them in.
"""

from __future__ import annotations

import os
import sys
import traceback

# Printed for a Ctrl-C that comes before any command ran (the commands' own is in cli/app.py).
_INTERRUPTED = "error: interrupted: nothing was changed\n"

try:
    from setup_tool.errors import ExitCode

    # isort: off
    # Importing registers each command; --help lists them in this order, the workflow's.
    from setup_tool.cli import env, detect, lock, install, doctor, bench, report  # noqa: F401
    from setup_tool.cli.app import app

    # isort: on
except KeyboardInterrupt:  # Ctrl-C while starting up (imports take seconds on a busy machine)
    sys.stderr.write(_INTERRUPTED)
    raise SystemExit(130) from None  # ExitCode.INTERRUPTED, which may not be imported yet

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # outside a command (typer's parsing): nothing ran yet
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
