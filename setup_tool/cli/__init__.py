"""The ``setup-tool`` command line: typer commands that call command modules and render results.

Importing a command module registers its command on ``app``; the order here is the order
``--help`` lists them in.
"""

from __future__ import annotations

import os
import sys
import traceback

# isort: off
# Importing registers each command; --help lists them in this order, the workflow's.
from setup_tool.cli import env, detect, lock, install, doctor, bench, report  # noqa: F401
from setup_tool.cli.app import app

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()  # a bug: keep its traceback
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if "rattler" in sys.modules:
        # py-rattler 0.28's native threads can crash the interpreter while it shuts down
        # (seen here: SIGSEGV / "PyGILState_Release ... finalizing" in 1-50% of runs that
        # used index_fs, solve or install). Everything is flushed and nothing is left to
        # clean up, so skip finalization rather than risk exit code 139 after a success.
        os._exit(code)
    sys.exit(code)
