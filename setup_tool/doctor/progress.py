"""What the doctor reports while it works. The base does nothing; the CLI shows a spinner.

The same shape as ``setup_tool.install.progress``: the core calls these methods at each step
and returns a ``DoctorResult``; only ``setup_tool.cli`` turns them into output.
"""

from __future__ import annotations


class DoctorProgress:
    """Events of one doctor run, in order. Override what you want to show."""

    def step(self, message: str) -> None:
        """A new step began ("probing …/bin/python (imports torch)")."""

    def done(self) -> None:
        """Every step is over; the result follows."""
