"""Runs the bundled benchmark (``setup_tool_bench``) inside a target interpreter.

setup-tool never imports torch: it checks the options against the benchmark's own definition
(``setup_tool_bench.options`` and ``.config``, plain Python), checks that the target is a
Python at all, and runs ``python -m setup_tool_bench`` there as a child attached to the
terminal (live progress). Only the benchmark package goes on the child's path: a link to it in
a temporary directory (a copy where links are not allowed), so none of setup-tool's own
dependencies leak into the environment under test. The child prints its own results and
errors; ``run_benchmark`` returns its exit code, normalised (``BenchOutcome``).

A data-parallel run (``--nproc-per-node``) is the same child: the benchmark starts torchrun
itself, inside the target environment, where torch is (``setup_tool_bench.launch``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from setup_tool.errors import ExitCode, UsageError
from setup_tool.runner import run_command, run_passthrough

PACKAGE = "setup_tool_bench"  # the benchmark's installed name (bench/ in the repository)
PYTHON_CHECK_TIMEOUT_S = 60.0  # a cold interpreter on a loaded machine or network disk


@dataclass(frozen=True)
class BenchOutcome:
    """How the benchmark child ended. It has printed its own results or ``error:`` line."""

    argv: tuple[str, ...]
    returncode: int

    @property
    def exit_code(self) -> ExitCode:
        if self.returncode == 0:
            return ExitCode.OK
        if self.returncode == ExitCode.USAGE:
            return ExitCode.USAGE
        if self.returncode in (ExitCode.INTERRUPTED, -2):  # -2: killed by SIGINT
            return ExitCode.INTERRUPTED
        return ExitCode.ERROR


class LaunchEvents(Protocol):
    """What the launcher reports before the child takes over the terminal."""

    def starting(self, python: Path, source: str) -> None: ...


def validate_options(values: Mapping[str, object]) -> None:
    """Refuse what the benchmark would refuse, before any interpreter is started."""
    from setup_tool_bench.config import configs_for
    from setup_tool_bench.errors import BenchError

    try:
        configs_for(values, devices=["cpu"])
    except BenchError as exc:
        raise UsageError(exc.message, exc.hint) from None


def bench_argv(python: Path, values: Mapping[str, object]) -> list[str]:
    """The command line that runs the benchmark with ``values`` ({option dest: value})."""
    from setup_tool_bench.options import to_argv

    return [str(python), "-m", PACKAGE, *to_argv(values)]


def lock_hash_of(prefix: Path | None) -> str | None:
    """The lock behind an environment setup-tool installed: conda-lock's content hash of the
    platform it was installed for, plus the digest of exactly the packages installed."""
    from setup_tool.install.prefix import read_state

    state = read_state(prefix) if prefix is not None else None
    if not state:
        return None
    return (
        f"{state.get('platform')}:{state.get('content_hash')}:packages={state.get('packages_hash')}"
    )


def package_dir() -> Path:
    """Where this setup-tool's benchmark package lives (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise UsageError(
            f"the benchmark package {PACKAGE} is missing from this setup-tool installation",
            "reinstall setup-tool (pip install -e . in its repository)",
        )
    return Path(spec.origin).parent


def check_python(python: Path) -> None:
    """Fail with what happened when ``python`` is not a Python that runs (``/etc/passwd``, a
    shell script, a broken interpreter): the benchmark child would not start either."""
    probe = run_command(
        [str(python), "-c", "import sys; print(sys.version_info[0])"],
        timeout=PYTHON_CHECK_TIMEOUT_S,
    )
    hint = "give the path of a Python executable, e.g. .envs/cpu/bin/python"
    if probe.error is not None:
        raise UsageError(f"{python} cannot run as Python: {_reason(probe.error)}", hint)
    if probe.returncode != 0 or probe.stdout.strip() != "3":
        raise UsageError(f"{python} is not a Python 3 interpreter ({probe.why_not()})", hint)


def _reason(error: str) -> str:
    """runner's "X could not run: Permission denied" → "permission denied"."""
    return error.rsplit(": ", 1)[-1] if ": " in error else error


@contextlib.contextmanager
def staged_environment(environ: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The child's environment: the benchmark package alone put first on ``PYTHONPATH``."""
    env = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory(prefix="setup-tool-bench-") as tmp:
        link = Path(tmp) / PACKAGE
        try:
            link.symlink_to(package_dir(), target_is_directory=True)
        except OSError:  # no symlinks (some Windows setups): copy the package instead
            shutil.copytree(package_dir(), link)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tmp, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen
        yield env


def run_benchmark(
    python: Path,
    source: str,
    values: Mapping[str, object],
    *,
    events: LaunchEvents,
    environ: Mapping[str, str] | None = None,
) -> BenchOutcome:
    """Validate, check the interpreter, run the benchmark attached to the terminal."""
    validate_options(values)
    check_python(python)
    argv = bench_argv(python, values)
    events.starting(python, source)
    with staged_environment(environ) as env:
        result = run_passthrough(argv, env=env)
    if result.returncode is None:
        raise UsageError(
            f"{python} could not be started: {_reason(result.error or 'unknown reason')}",
            "give the path of a Python executable, e.g. .envs/cpu/bin/python",
        )
    return BenchOutcome(tuple(argv), result.returncode)
