"""One pip solve with uv: ``uv pip compile`` for one target platform and Python.

Why uv: it resolves for a platform and Python other than the running ones
(``--python-platform``, ``--python-version``), only from wheels (``--no-build``: nothing is
built, so no sdist enters a lock and no build code runs at lock time), reads PEP 503 and PEP
691 indexes (PyTorch's included), and writes ``pylock.toml`` (PEP 751), which carries each
wheel's URL and sha256. It is a single binary on PyPI (``uv.find_uv_bin()``), run through
``setup_tool.runner`` like every external command.

The conda packages of the same platform are fixed for this solve, as conda-lock fixes them for
its pip solve: each Python package conda provides (``pypi_names.conda_provided``) becomes a
metadata-only wheel ``<name>-<conda version>+conda`` in a ``--find-links`` folder, pinned by a
constraint ``<name>==<version>+conda``. A local version label matches only that wheel (PEP 440:
``==V+local``), so uv neither downloads nor re-resolves those packages, a pip requirement that
needs another version fails naming both, and the stubs are left out of the result.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.errors import ChannelUnreachable, SetupToolError, SolveError
from setup_tool.lock.pip_indexes import UNREACHABLE_HINT, PipIndexes
from setup_tool.lock.pip_target import PipTarget
from setup_tool.runner import CommandResult, Runner, run_command

log = logging.getLogger(__name__)

UV_TIMEOUT_S = 600.0
CONDA_LABEL = "conda"  # the local version label of the conda-provided stand-ins
EXPLANATION_MAX_LINES = 12


@dataclass(frozen=True)
class ResolvedWheel:
    """One wheel uv chose: PyPI name (normalized), version, URL and sha256."""

    name: str
    version: str
    url: str
    sha256: str


@dataclass(frozen=True)
class PipSolveRequest:
    """What one ``uv pip compile`` resolves: the requirements for one target, from indexes,
    with the conda-provided packages (PyPI name → (version, conda name)) fixed."""

    label: str  # "cpu linux-64", for messages
    requirements: tuple[str, ...]
    target: PipTarget
    indexes: PipIndexes
    conda_provided: Mapping[str, tuple[str, str]]


def uv_binary() -> str:
    """The uv executable that the ``uv`` package from PyPI installs."""
    try:
        from uv import find_uv_bin
    except ImportError:
        raise SetupToolError(
            "uv is not installed, and locking a pip section needs it",
            "pip install uv (setup-tool depends on it; reinstall setup-tool)",
        ) from None
    return str(find_uv_bin())


def compile_wheels(
    request: PipSolveRequest,
    *,
    cache_dir: Path,
    runner: Runner = run_command,
    timeout_s: float = UV_TIMEOUT_S,
) -> tuple[tuple[ResolvedWheel, ...], float]:
    """The wheels uv resolves for ``request`` (conda-provided ones left out), and the seconds."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="setup-tool-uv-") as tmp:
        folder = Path(tmp)
        argv, env = _command(request, folder, cache_dir)
        result = runner(argv, timeout=timeout_s, env=env, cwd=folder)
        if not result.ok:
            raise _failure(request, result)
        packages = _read_pylock(folder / "pylock.toml")
    wheels = tuple(
        _chosen_wheel(request, package)
        for package in packages
        if not str(package.get("version", "")).endswith(f"+{CONDA_LABEL}")
    )
    return tuple(sorted(wheels, key=lambda w: w.name)), time.perf_counter() - start


def _command(
    request: PipSolveRequest, folder: Path, cache_dir: Path
) -> tuple[list[str], dict[str, str]]:
    (folder / "requirements.in").write_text("".join(f"{r}\n" for r in request.requirements))
    stubs = folder / "conda-provided"
    stubs.mkdir()
    constraints = []
    for name, (version, _) in sorted(request.conda_provided.items()):
        if _write_stub(stubs, name, version):
            constraints.append(f"{name}=={version}+{CONDA_LABEL}\n")
    (folder / "constraints.txt").write_text("".join(constraints))
    platform, platform_env = request.target.uv_platform()
    *extra, default = [os.path.expandvars(u) for u in request.indexes.urls]
    argv = [
        uv_binary(),
        *("pip", "compile", "requirements.in", "--constraint", "constraints.txt"),
        *("--find-links", str(stubs), "--format", "pylock.toml", "-o", "pylock.toml"),
        *("--python-version", request.target.python, "--python-platform", platform),
        # An interpreter to run on, so that uv neither searches for one nor downloads one; the
        # target is --python-version/--python-platform.
        *("--python", sys.executable, "--no-python-downloads"),
        *("--no-build", "--no-config", "--no-progress", "--quiet"),
        *("--index-strategy", "first-index", "--default-index", default),
        *(arg for url in extra for arg in ("--index", url)),
        *("--cache-dir", str(cache_dir / "uv")),
    ]
    # uv reads its settings from UV_* variables too: drop the user's, they would change the lock.
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.update(platform_env)
    return argv, env


def _write_stub(folder: Path, name: str, version: str) -> bool:
    """A metadata-only wheel for a conda-provided package; False if its version is not PEP 440."""
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        log.debug("conda's %s %s is not a PEP 440 version: not fixed for pip", name, version)
        return False
    dist = f"{name.replace('-', '_')}-{version}+{CONDA_LABEL}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}+{CONDA_LABEL}\n"
    wheel = "Wheel-Version: 1.0\nGenerator: setup-tool\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{dist}.dist-info/METADATA", metadata)
        archive.writestr(f"{dist}.dist-info/WHEEL", wheel)
        archive.writestr(f"{dist}.dist-info/RECORD", "")
    return True


def _read_pylock(path: Path) -> list[dict[str, Any]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover (Python 3.10)
        import tomli as tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return list(data.get("packages", []))


def _chosen_wheel(request: PipSolveRequest, package: Mapping[str, Any]) -> ResolvedWheel:
    """The package's best wheel for the target (pylock may list several of one version)."""
    from urllib.parse import unquote

    from packaging.utils import canonicalize_name, parse_wheel_filename

    name = str(canonicalize_name(str(package["name"])))
    ranks = {tag: i for i, tag in enumerate(request.target.wheel_tags())}
    best: tuple[int, Mapping[str, Any]] | None = None
    for wheel in package.get("wheels", []):
        filename = unquote(str(wheel["url"]).rsplit("/", 1)[-1])
        _, _, _, tags = parse_wheel_filename(filename)
        rank = min((ranks.get(str(t), len(ranks)) for t in tags), default=len(ranks))
        if rank < len(ranks) and (best is None or rank < best[0]):
            best = (rank, wheel)
    if best is None or "sha256" not in best[1].get("hashes", {}):
        raise SolveError(
            f"uv chose {name} {package.get('version')} for {request.label}, but no wheel of it "
            f"with a sha256 installs there",
            "",
            hint="setup-tool locks wheels with hashes only; check the index's files",
        )
    wheel = best[1]
    return ResolvedWheel(
        name, str(package["version"]), str(wheel["url"]), str(wheel["hashes"]["sha256"])
    )


# --- uv's failures as one clear error ------------------------------------------------------------

_NO_WHEEL = re.compile(r"Wheels are required for `([^`]+)`|(\S+)==\S+ has no usable wheels")
_NOT_FOUND = re.compile(r"Because (\S+) was not found in the package registry")
_FETCH = re.compile(r"Failed to fetch: `?(\S+?)`?$", re.M)
_STUB = re.compile(rf"([A-Za-z0-9_.\-]+)==([^\s,]+)\+{CONDA_LABEL}")


def _failure(request: PipSolveRequest, result: CommandResult) -> SetupToolError:
    text = (result.stderr or result.stdout or result.why_not()).strip()
    log.debug("uv for %s:\n%s", request.label, text)
    if result.returncode is None:
        return SetupToolError(
            f"uv could not resolve the pip section for {request.label}: {result.why_not()}",
            "check that uv runs (`uv --version`); `setup-tool -v lock` logs its command line",
        )
    fetch = _FETCH.search(text)
    if fetch and "No solution found" not in text:
        cause = text.strip().splitlines()[-1].removeprefix("cause:").strip()
        return ChannelUnreachable(
            f"cannot read pip index for {request.label}: {fetch.group(1)}: {cause}",
            UNREACHABLE_HINT,
        )
    explanation = _explanation(text)
    no_wheel = _NO_WHEEL.search(text)
    if no_wheel:
        name = no_wheel.group(1) or no_wheel.group(2)
        return SolveError(
            f"{name} has no wheel for {request.label} (Python {request.target.python}): only a "
            "source distribution, and setup-tool locks wheels only (nothing is built)",
            explanation,
            hint=f"pin a version of {name} that has a wheel for this platform, or put a wheel "
            "of it in your own index (--pip-index-url)",
        )
    conda = [(m.group(1), m.group(2)) for m in _STUB.finditer(text)]
    if conda:
        names = ", ".join(f"{n} {v}" for n, v in dict.fromkeys(conda))
        return SolveError(
            f"the pip requirements for {request.label} conflict with conda's {names}:",
            explanation,
            hint="conda's packages are fixed for the pip solve: loosen the pip requirement, or "
            "pin the conda package in envs/*.yml to a version the pip package accepts",
        )
    missing = _NOT_FOUND.search(text)
    if missing:
        return SolveError(
            f"pip package {missing.group(1)} is not in the indexes "
            f"{request.indexes.describe()} ({request.label})",
            explanation,
            hint="check the name (PyPI's), or add the index that has it (pip-repositories or "
            "--pip-index-url)",
        )
    return SolveError(
        f"the pip section cannot be resolved for {request.label}:",
        explanation,
        hint="loosen the pip requirements in envs/*.yml",
    )


def _explanation(text: str) -> str:
    """uv's reasons, with the conda stand-ins spelled as what they are."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    lines = [
        line for line in lines if not line.startswith(("error: No solution found", "warning:"))
    ]
    lines = [
        _STUB.sub(lambda m: f"{m.group(1)}=={m.group(2)} (from conda)", line) for line in lines
    ]
    if len(lines) > EXPLANATION_MAX_LINES:
        cut = len(lines) - EXPLANATION_MAX_LINES
        lines = [
            *lines[:EXPLANATION_MAX_LINES],
            f"… {cut} more lines (run with -v for uv's full text)",
        ]
    return "\n".join(lines)
