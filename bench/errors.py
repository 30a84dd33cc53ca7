"""The benchmark's errors: one line, a hint, an exit code (the same codes as setup-tool's).

    BenchError            exit 1   e.g. an unwritable results directory
    ├── BenchUsageError   exit 2   a bad flag value, an unavailable device
    └── DataError         exit 1   a data file missing or failing its checksum

``bench.cli`` is the only place that catches them; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class BenchError(Exception):
    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BenchUsageError(BenchError):
    exit_code = EXIT_USAGE


class DataError(BenchError):
    pass
