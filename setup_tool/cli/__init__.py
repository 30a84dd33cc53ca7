"""The ``setup-tool`` command line: typer commands that call command modules and render results.

Importing a command module registers its command on ``app``; the order here is the order
``--help`` lists them in.
"""

from __future__ import annotations

from setup_tool.cli import bench, report  # noqa: F401  (register the commands)
from setup_tool.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
