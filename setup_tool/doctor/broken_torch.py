"""A torch that imports but does not work: what it is, and the repair that fits the environment.

``import torch`` succeeding proves little: a directory named ``torch`` without
``__init__.py`` (a namespace package), a half-deleted install or a stand-in module all import.
The probe lists the parts of torch's API that are missing (``missing_api``); this module turns
that, and where the environment came from, into the fix:

- a directory named torch without ``__init__.py`` comes first on the path: remove it;
- the environment left its lock (the drift check): reinstall from the lock;
- torch's files differ from what its conda package installed: recreate the environment (the
  lock check compares package records only, so a plain reinstall would see nothing to do);
- torch's files are exactly what its package installed: the package itself is broken, so the
  channel it came from is the problem: lock again from conda-forge;
- not a conda environment: reinstall torch with pip in that interpreter.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from setup_tool.doctor.drift import Drift
from setup_tool.doctor.facts import ProbeFacts
from setup_tool.doctor.package_files import PackageFiles

# The file every torch install has; which conda package owns it names torch's package.
TORCH_INIT = "site-packages/torch/__init__.py"
TORCH_PACKAGES = frozenset({"pytorch", "torch", "libtorch"})
MISSING_SHOWN = 4


def broken_torch_detail(facts: ProbeFacts) -> str:
    torch = facts.torch
    assert torch is not None
    where = torch.path or "(unknown location)"
    version = f"torch {torch.version}" if torch.version else "torch"
    if torch.file is None and torch.path:
        return (
            f"{version} at {where} is a directory without __init__.py (a namespace package), "
            "not PyTorch: `import torch` finds it first"
        )
    if torch.missing_api:
        shown = ", ".join(torch.missing_api[:MISSING_SHOWN])
        more = len(torch.missing_api) - MISSING_SHOWN
        more_text = f" and {more} more" if more > 0 else ""
        return (
            f"{version} at {where} imports, but it is not a working PyTorch: it has no "
            f"{shown}{more_text}"
        )
    return f"{version} at {where} fails inside its own code: {facts.probe_error}"


def broken_torch_fix(facts: ProbeFacts, drift: Drift | None, files: PackageFiles | None) -> str:
    torch = facts.torch
    assert torch is not None
    if torch.file is None and torch.path:
        pythonpath = facts.environment.get("PYTHONPATH")
        via = f" (PYTHONPATH={pythonpath})" if pythonpath else ""
        return f"remove the directory {torch.path} or take it off the module path{via}"
    if drift is not None and drift.state == "drifted" and _torch_drifted(drift):
        return "the environment left its lock (see lock below): reinstall from the lock: " + (
            _install_command(drift, drift.prefix)
        )
    if files is not None and not files.intact:
        return (
            f"{files.name}'s files were changed after it was installed "
            f"({files.describe_differences()}); the lock check compares package records, not "
            f"files, so an install sees nothing to do: recreate the environment: "
            f"`rm -rf {shlex.quote(str(files.prefix))}` then "
            f"{_install_command(drift, files.prefix)}"
        )
    if files is not None:
        source = f" from {files.channel}" if files.channel else ""
        clean = drift is not None and drift.state == "clean"
        matches = "the environment matches its lock and " if clean else ""
        return (
            f"{matches}torch's files are the ones its package "
            f"installed, so the package itself ({files.name} {files.version} {files.build}"
            f"{source}) is not a working PyTorch: lock again from a channel with the real "
            f"PyTorch (`setup-tool lock --channel conda-forge`), then `setup-tool install`"
        )
    python = shlex.quote(facts.python_executable or "python")
    pin = f"=={torch.version}" if torch.version and torch.version[0].isdigit() else ""
    return (
        f"reinstall torch in that environment: `{python} -m pip install --force-reinstall "
        f"--no-deps torch{pin}`"
    )


def _torch_drifted(drift: Drift) -> bool:
    names = {c.locked.name for c in drift.changed} | {p.name for p in drift.missing}
    return bool(names & TORCH_PACKAGES)


def _install_command(drift: Drift | None, prefix: Path | None) -> str:
    parts = ["setup-tool", "install"]
    if prefix is not None:
        parts += ["--prefix", str(prefix)]
    if drift is not None and drift.lockfile is not None:
        parts += ["--lockfile", str(drift.lockfile)]
    return f"`{shlex.join(parts)}`"
