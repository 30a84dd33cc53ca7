"""Running the probe in the target interpreter, and turning what happened into a ``ProbeRun``.

The probe is a file run by path (``python …/probe.py``), through the one subprocess boundary
(``setup_tool.runner``), bounded by a timeout that kills its whole process group. Every way it
can go wrong (not runnable, hung, crashed, printed something that is not the probe's JSON) is
a ``ProbeRun`` with ``facts=None`` and a one-line ``failure`` plus the stderr tail; nothing
here raises for a broken environment.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from setup_tool.doctor.facts import ProbeFacts, ProbeFormatError, parse_probe
from setup_tool.runner import Runner, run_command

PROBE_SCRIPT = Path(__file__).with_name("probe.py")

# The probe imports torch (seconds) and initialises every visible GPU (cuDNN and cuBLAS load
# lazily, about a second each); two minutes is generous, and a hung driver still ends.
DEFAULT_PROBE_TIMEOUT_S = 120.0
STDERR_TAIL_LINES = 12


@dataclass(frozen=True)
class ProbeRun:
    """One probe run: its facts, or why there are none."""

    argv: tuple[str, ...]
    facts: ProbeFacts | None
    failure: str | None = None  # one line: "timed out after 120 s", "killed by SIGSEGV", ...
    stderr_tail: str = ""
    last_stage: str | None = None  # the stage the probe announced last ("importing torch")
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.facts is not None


def run_probe(
    python: Path, *, runner: Runner = run_command, timeout: float = DEFAULT_PROBE_TIMEOUT_S
) -> ProbeRun:
    """Run the probe with ``python`` and read its JSON."""
    argv = (str(python), str(PROBE_SCRIPT))
    started = time.perf_counter()
    result = runner(argv, timeout=timeout)
    seconds = time.perf_counter() - started
    tail = "\n".join(result.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    stage = _last_stage(result.stderr)

    def failed(why: str) -> ProbeRun:
        return ProbeRun(argv, None, why, tail, stage, seconds)

    if result.error is not None:
        # The runner's wording names the whole command line; the report names the Python.
        if "timed out" in result.error:
            return failed(f"timed out after {timeout:g} s")
        return failed(f"could not start: {result.error}")
    if result.returncode != 0:
        return failed(_exit_description(result.returncode))
    try:
        facts = parse_probe(json.loads(result.stdout))
    except (json.JSONDecodeError, ProbeFormatError) as exc:
        first = result.stdout.strip().splitlines()[:1]
        shown = f": {first[0][:120]!r}" if first else " (stdout was empty)"
        reason = exc if isinstance(exc, ProbeFormatError) else "not JSON"
        return failed(f"printed something that is not the probe's JSON ({reason}){shown}")
    return ProbeRun(argv, facts, None, tail, stage, seconds)


def _exit_description(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _last_stage(stderr: str) -> str | None:
    stages = [line[len("probe: ") :] for line in stderr.splitlines() if line.startswith("probe: ")]
    return stages[-1] if stages else None
