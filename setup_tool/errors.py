"""The one error tree of setup-tool, and the exit codes the CLI maps results to.

Every error a user can cause or fix carries a one-line ``message`` and a ``hint`` that says
what to do. Only ``setup_tool.cli`` catches these; it prints ``error: message`` and the hint to
stderr and exits with ``exit_code``. Anything else that escapes is a bug and keeps its traceback.

    SetupToolError                      exit 1
    ├── UsageError                      exit 2   bad flag, env var or file content
    │   └── SpecError                   exit 2   an envs/*.yml file is malformed (file:line)
    ├── UnsupportedPlatform             exit 3   no variant fits this OS / architecture
    ├── ChannelUnreachable              exit 1   conda channel cannot be read
    ├── SolveError                      exit 1   a spec cannot be satisfied (solver's reasons)
    ├── LockfileInvalid                 exit 1   a lockfile is missing, truncated or malformed
    ├── LockfileMismatch                exit 5   the lock does not fit this machine
    ├── HashMismatch                    exit 7   a package's sha256 differs from the lock
    └── CommandFailed                   exit 1   an external command failed (argv, code, stderr)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Documented exit codes (README "Exit codes"). Never negative, never above 125."""

    OK = 0
    ERROR = 1
    USAGE = 2
    UNSUPPORTED_PLATFORM = 3
    LOCK_STALE = 4
    LOCK_MISMATCH = 5
    DOCTOR_FAILED = 6
    HASH_MISMATCH = 7
    DOCTOR_PROBLEMS = 8  # the expected accelerator passed, another doctor check failed
    INTERRUPTED = 130


class SetupToolError(Exception):
    """An error the user can act on: a one-line message and a fix hint."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of a ``--json`` refusal (docs/install.md, "JSON output")."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }


class UsageError(SetupToolError):
    """A flag, environment variable or input file the user gave is not valid."""

    exit_code = ExitCode.USAGE


class SpecError(UsageError):
    """An environment spec (``envs/*.yml``) is malformed or names something unknown.

    ``location`` is ``path:line`` when the line is known; the message starts with it, the way
    compilers report errors, so editors can jump to it.
    """

    def __init__(
        self, path: str, message: str, *, line: int | None = None, hint: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.location = f"{path}:{line}" if line is not None else path
        super().__init__(f"{self.location}: {message}", hint)


class UnsupportedPlatform(SetupToolError):
    """No PyTorch variant that setup-tool offers can run on this OS / architecture."""

    exit_code = ExitCode.UNSUPPORTED_PLATFORM


class ChannelUnreachable(SetupToolError):
    """A conda channel (conda-forge or the ``--channel`` given) could not be read."""


class SolveError(SetupToolError):
    """The solver found no set of packages that satisfies a spec on one platform."""

    def __init__(self, message: str, explanation: str, hint: str | None = None) -> None:
        self.explanation = explanation
        super().__init__(f"{message}\n{explanation}" if explanation else message, hint)


class LockfileInvalid(SetupToolError):
    """A lockfile is missing, truncated, or not a conda-lock file."""


class LockfileMismatch(SetupToolError):
    """The lockfile cannot be installed on this machine (platform, driver, glibc, macOS).

    ``reasons`` lists each one (``{"kind", "reason", "fix"}``) for ``--json``.
    """

    exit_code = ExitCode.LOCK_MISMATCH

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        reasons: tuple[dict[str, str], ...] = (),
    ) -> None:
        super().__init__(message, hint)
        self.reasons = reasons

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reasons": list(self.reasons)}


class HashMismatch(SetupToolError):
    """A downloaded package does not have the sha256 the lockfile records."""

    exit_code = ExitCode.HASH_MISMATCH


class CommandFailed(SetupToolError):
    """An external command exited non-zero; keeps argv, return code and the tail of stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr_tail: str,
        hint: str | None = None,
    ) -> None:
        import shlex

        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        status = "timed out" if returncode is None else f"exited with {returncode}"
        message = f"`{shlex.join(self.argv)}` {status}"
        if stderr_tail.strip():
            message += f": {stderr_tail.strip().splitlines()[-1]}"
        super().__init__(message, hint)
