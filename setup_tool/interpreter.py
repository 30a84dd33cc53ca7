"""Which Python the torch-side work (doctor's probe, the benchmark) runs in.

The CLI never imports torch: it runs scripts in a *target* interpreter as a subprocess. The
target is, in order: ``--python PATH``; ``--prefix PATH`` (its ``bin/python``); the environment
``setup-tool env`` made for the detected variant (``.envs/<variant>``), or the only one under
``.envs/``; the interpreter running setup-tool when it has torch. The result says which, so
output can show "python from --prefix" and so on.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from setup_tool.errors import UsageError
from setup_tool.paths import PREFIXES_DIR, default_prefix, shown_path
from setup_tool.variants import Variant


@dataclass(frozen=True)
class Interpreter:
    """A Python to run torch-side scripts in, and why it was chosen."""

    python: Path
    source: str  # "--python", "--prefix", "environment .envs/cuda", "current interpreter"
    prefix: Path | None = None  # the conda prefix it belongs to, when known


def prefix_python(prefix: Path) -> Path:
    """The interpreter inside a conda prefix (``bin/python``, or ``python.exe`` on Windows)."""
    return prefix / ("python.exe" if os.name == "nt" else "bin/python")


def resolve_interpreter(
    *,
    python: Path | None,
    prefix: Path | None,
    root: Path,
    variant: Variant | None,
    current_has_torch: bool | None = None,
) -> Interpreter:
    """Pick the target interpreter; raise ``UsageError`` with a fix when there is none."""
    if python is not None and prefix is not None:
        raise UsageError(
            "--python and --prefix name the same thing; give one of them",
            "pass --python PATH (an interpreter) or --prefix DIR (an environment), not both",
        )
    if python is not None:
        found = _find_python(python)
        if found is None:
            raise UsageError(
                f"--python {python}: no such file or command",
                "give the path of a Python executable",
            )
        return Interpreter(found, "--python")
    if prefix is not None:
        candidate = prefix_python(prefix)
        if not candidate.exists():
            raise UsageError(
                f"--prefix {prefix}: no Python at {candidate}",
                "give the prefix of a conda environment, e.g. .envs/cuda made by `setup-tool env`",
            )
        return Interpreter(candidate, "--prefix", prefix)
    for env_prefix in _project_environments(root, variant):
        candidate = prefix_python(env_prefix)
        if candidate.exists():
            return Interpreter(candidate, f"environment {shown_path(env_prefix, root)}", env_prefix)
    if current_has_torch is None:
        current_has_torch = importlib.util.find_spec("torch") is not None
    if current_has_torch:
        return Interpreter(Path(sys.executable), "current interpreter")
    raise UsageError(
        "no Python with torch found: no environment under .envs/ and none given",
        "run `setup-tool env` (or `make env`) to install one, or pass --python / --prefix",
    )


def _find_python(python: Path) -> Path | None:
    """An existing path, or a bare command name looked up on PATH (``--python python3``)."""
    if python.exists():
        return python
    if len(python.parts) == 1:
        found = shutil.which(str(python))
        return Path(found) if found else None
    return None


def _project_environments(root: Path, variant: Variant | None) -> Iterable[Path]:
    """The detected variant's environment first, then the only other one, if just one exists."""
    if variant is not None:
        yield default_prefix(root, variant)
    envs = root / PREFIXES_DIR
    # Hidden entries are installers' staging areas and locks, never environments.
    others = (
        sorted(p for p in envs.iterdir() if p.is_dir() and not p.name.startswith("."))
        if envs.is_dir()
        else []
    )
    if len(others) == 1:
        yield others[0]
