"""What ``setup-tool doctor`` returns: checks with a status and a fix, and the exit code.

``DoctorResult.exit_code`` is the one place the doctor's outcome becomes a number:

    0  OK              the expected accelerator passed the placement check, nothing failed
    6  DOCTOR_FAILED   the expected accelerator failed, or could not be checked at all
    8  DOCTOR_PROBLEMS the expected accelerator passed, but another check failed
                       (torchvision does not work with this torch, the environment left its
                       lock, the collective check failed)

Warnings never change the exit code. ``to_json`` is the documented ``--json`` schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from setup_tool.errors import ExitCode
from setup_tool.interpreter import Interpreter
from setup_tool.variants import Variant

JSON_SCHEMA_VERSION = 1


class Status(str, Enum):
    passed = "pass"
    warned = "warn"
    failed = "fail"
    skipped = "skip"


@dataclass(frozen=True)
class Check:
    """One line of the report. ``id`` is stable for scripts ("placement.cuda:0", "pitfall.…")."""

    id: str
    title: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class DoctorResult:
    expect: Variant
    expect_source: str  # "--expect", "SETUP_TOOL_VARIANT", "detected: <reason>"
    interpreter: Interpreter | None
    checks: tuple[Check, ...]
    accelerator_passed: bool
    probe: Mapping[str, Any] | None = None  # the probe's own JSON, when it produced one
    collective: Mapping[str, Any] | None = None  # the collective check's figures (--json)

    @property
    def exit_code(self) -> ExitCode:
        if not self.accelerator_passed:
            return ExitCode.DOCTOR_FAILED
        if any(c.status is Status.failed for c in self.checks):
            return ExitCode.DOCTOR_PROBLEMS
        return ExitCode.OK

    @property
    def summary(self) -> str:
        name = self.expect.value
        if not self.accelerator_passed:
            return f"{name} (expected) did not pass the placement check"
        failed = [c.title for c in self.checks if c.status is Status.failed]
        if failed:
            return f"{name} (expected) passed; failed: {', '.join(failed)}"
        collective = self.collective or {}
        if collective.get("passed"):
            world = collective["world_size"]
            ranks = f"{world} {collective['backend']} rank{'s' if world != 1 else ''}"
            return (
                f"{name} (expected) passed the placement check and the collective check ({ranks})"
            )
        return f"{name} (expected) passed the placement check"

    def to_json(self) -> dict[str, Any]:
        interpreter = self.interpreter
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "expect": {"accelerator": self.expect.value, "source": self.expect_source},
            "interpreter": None
            if interpreter is None
            else {
                "python": str(interpreter.python),
                "source": interpreter.source,
                "prefix": str(interpreter.prefix) if interpreter.prefix else None,
            },
            "passed": self.accelerator_passed,
            "exit_code": int(self.exit_code),
            "summary": self.summary,
            "checks": [c.to_json() for c in self.checks],
            "probe": self.probe,
            "collective": self.collective,
        }
