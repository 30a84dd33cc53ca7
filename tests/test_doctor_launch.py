"""Bad interpreters and probes that go wrong: each is a failed check with the stderr tail.

The "interpreters" are small shell scripts that ignore the probe path they are given, so
these tests run real subprocesses through the real runner without importing torch.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from setup_tool.doctor.checks import Evidence, judge
from setup_tool.doctor.launch import run_probe
from setup_tool.doctor.result import Status
from setup_tool.errors import ExitCode
from setup_tool.interpreter import Interpreter
from setup_tool.variants import Variant


def fake_python(tmp_path: Path, body: str, name: str = "python") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("body", "failure", "in_detail"),
    [
        (
            "echo 'probe: importing torch' >&2; echo 'Fatal Python error: Segmentation fault' >&2; "
            "kill -SEGV $$",
            "was killed by SIGSEGV",
            "Segmentation fault",
        ),
        ("echo 'boom' >&2; exit 3", "exited with status 3", "boom"),
        ("echo 'Hello from not-python'", "not the probe's JSON", "Hello from not-python"),
        ('echo \'{"some": "json"}\'', "not a setup-tool probe document", "json"),
        ("exit 0", "stdout was empty", ""),
    ],
    ids=["segfault", "non-zero", "not-json", "other-json", "silent"],
)
def test_probe_failures_become_a_failed_check(
    tmp_path: Path, body: str, failure: str, in_detail: str
) -> None:
    python = fake_python(tmp_path, body)
    run = run_probe(python, timeout=10)
    assert run.facts is None
    assert run.failure is not None and failure in run.failure
    result = judge(
        Evidence(Variant.cpu, "--expect", None, Interpreter(python, "--python"), None, run)
    )
    (check,) = result.checks
    assert (check.id, check.status) == ("probe", Status.failed)
    assert in_detail in check.detail
    assert check.fix
    assert result.exit_code is ExitCode.DOCTOR_FAILED


def test_crash_names_the_stage_it_died_in(tmp_path: Path) -> None:
    python = fake_python(
        tmp_path,
        "echo 'probe: importing torch' >&2; echo 'probe: placement check on cuda:0' >&2; exit 134",
    )
    run = run_probe(python, timeout=10)
    assert run.last_stage == "placement check on cuda:0"
    result = judge(
        Evidence(Variant.cuda, "--expect", None, Interpreter(python, "--python"), None, run)
    )
    assert "during 'placement check on cuda:0'" in result.checks[0].detail
    assert "NVIDIA driver" in (result.checks[0].fix or "")


def test_a_hung_probe_is_killed_at_the_timeout(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 'probe: importing torch' >&2; sleep 30")
    run = run_probe(python, timeout=1)
    assert run.facts is None
    assert run.failure is not None and "timed out after 1 s" in run.failure
    assert run.seconds < 25  # the hang (30 s) is the failure tested: generous over 1 s
    result = judge(
        Evidence(Variant.cpu, "--expect", None, Interpreter(python, "--python"), None, run)
    )
    assert "--timeout" in (result.checks[0].fix or "")


def test_a_file_that_cannot_run_is_a_failed_check(tmp_path: Path) -> None:
    not_executable = tmp_path / "python"
    not_executable.write_text("just text")
    run = run_probe(not_executable, timeout=10)
    assert run.facts is None
    assert run.failure is not None and "could not run" in run.failure


def test_probe_json_is_read_whatever_the_python_prints_on_stderr(tmp_path: Path) -> None:
    recorded = Path(__file__).parent / "data" / "probe-linux-x86_64-cu130-no-gpu.json"
    python = fake_python(tmp_path, f"echo 'a warning' >&2; cat {recorded}")
    run = run_probe(python, timeout=10)
    assert run.facts is not None
    assert run.facts.raw == json.loads(recorded.read_text())
    assert run.stderr_tail == "a warning"
