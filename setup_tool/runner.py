"""The one subprocess boundary: every external command setup-tool runs goes through here.

``run_command`` never raises for the usual failures of a probe (missing executable, non-zero
exit, timeout): it returns a ``CommandResult`` that says what happened, so a reader can turn
it into "unknown, because ...". Children run in their own session so that a timeout kills the
whole process group (an ``nvidia-smi`` that hangs in the driver, or a probe that forked).
Tests pass their own ``Runner`` (any callable with ``run_command``'s signature).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CommandResult:
    """What one external command did. ``error`` is set when it did not run to completion."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    def why_not(self) -> str:
        """A one-line reason this command did not succeed (for "unknown, because ...")."""
        if self.error:
            return self.error
        tail = self.stderr.strip().splitlines()[-1:] or self.stdout.strip().splitlines()[-1:]
        suffix = f": {tail[0]}" if tail else ""
        return f"`{shlex.join(self.argv)}` exited with {self.returncode}{suffix}"


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CommandResult: ...


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CommandResult:
    """Run ``argv`` with captured text output, bounded by ``timeout`` seconds."""
    argv = tuple(str(a) for a in argv)
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        return CommandResult(argv, None, error=f"{argv[0]} not found")
    except OSError as exc:
        return CommandResult(argv, None, error=f"{argv[0]} could not run: {exc.strerror or exc}")
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        return CommandResult(
            argv, None, stdout, stderr, error=f"`{shlex.join(argv)}` timed out after {timeout:g} s"
        )
    return CommandResult(argv, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_passthrough(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CommandResult:
    """Run ``argv`` attached to this terminal (live progress), and return how it ended.

    For long interactive children (the benchmark): no capture, no timeout, same process group,
    so Ctrl-C reaches the child too and it can save what it finished; we then wait for it.
    When the command cannot start, ``returncode`` is None and ``error`` says why (not found,
    permission denied, not an executable).
    """
    argv = tuple(str(a) for a in argv)
    log.debug("run (attached): %s", shlex.join(argv))
    try:
        proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd)
    except FileNotFoundError:
        return CommandResult(argv, None, error=f"{argv[0]} not found")
    except OSError as exc:
        return CommandResult(argv, None, error=f"{argv[0]} could not run: {exc.strerror or exc}")
    while True:
        try:
            return CommandResult(argv, proc.wait())
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT: let it write its results and exit
