"""What an install reports while it works. The base does nothing; the CLI draws progress bars.

Kept in its own module so the CLI can subclass it without reaching into the install steps.
"""

from __future__ import annotations

from collections.abc import Callable

from setup_tool.install.download import DownloadReporter


class Progress:
    """What install reports while it works; the CLI supplies one that draws them."""

    def step(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        """Something the user should know, said once the machine check passed and before
        anything is fetched (``InstallResult.warnings`` holds them too)."""

    def downloads(self, count: int) -> DownloadReporter | None:
        return None

    def linking(self, count: int) -> Callable[[], None] | None:
        return None

    def wheels(self, count: int) -> Callable[[], None] | None:
        """The pip phase: called once per wheel installed (from worker threads)."""
        return None

    def done(self) -> None:
        pass
