"""``setup-tool detect``: this machine's facts, and the PyTorch target chosen from them.

    probe() ──► Platform (facts.py; readers in nvidia.py, macos.py, linux.py)
    select_target(Platform, Overrides) ──► Target (target.py, a pure function)

``detect()`` runs both and returns a ``Detection``, which other commands (install, doctor,
env) use to learn the variant and virtual packages of this machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from setup_tool.detect.facts import Gpu, Nvidia, Platform
from setup_tool.detect.target import Overrides, Target, overrides_from, select_target

__all__ = [
    "Detection",
    "Gpu",
    "Nvidia",
    "Overrides",
    "Platform",
    "Target",
    "detect",
    "overrides_from",
    "select_target",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Detection:
    platform: Platform
    target: Target

    def to_json(self) -> dict[str, Any]:
        """``detect --json`` (schema in docs/detect.md, versioned by ``schema_version``)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "platform": self.platform.to_json(),
            "target": self.target.to_json(),
        }


def detect(
    overrides: Overrides | None = None, environ: Mapping[str, str] | None = None
) -> Detection:
    """Probe this machine and choose its target."""
    from setup_tool.detect.probe import probe

    platform = probe(os.environ if environ is None else environ)
    return Detection(platform, select_target(platform, overrides))
