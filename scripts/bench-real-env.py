#!/usr/bin/env python3
"""How long the real environment takes to make: a benchmark, not a test.

The environment of the end-to-end test (``tests/test_e2e.py``): the running interpreter as a
conda ``python`` package plus ``pip`` (``tests/realpython.py``), and torch 2.13.0+cpu with its
dependencies and numpy from a local wheel index (``tests/e2ewheels.py``; ``make e2e-wheels``
fetches them once). Everything is local, so the figures are setup-tool's own work: reading,
verifying and copying ~235 MB of archives, extracting, linking, installing wheels, and the
doctor's ``import torch``.

Measured, each a fresh ``python -m setup_tool`` process, in a scratch project:

- ``env cold``: ``setup-tool env`` with an empty package cache (lock + install + doctor);
- ``env no-op``: the same again (lock up to date, environment installed, doctor);
- ``env warm``: the prefix deleted, ``setup-tool env`` (no lock needed, packages from cache);
- ``install warm``: the prefix deleted, ``setup-tool install`` from the filled cache;
- ``install cold``: prefix and cache deleted, ``setup-tool install`` (the lock kept);
- ``install no-op``: ``setup-tool install`` of the installed lock.

``--runs N`` repeats each (default 3) and reports the median and the spread. Deleting an
800 MB prefix of ~19,000 files is itself slow; the clock starts after ``os.sync()``.

    .venv/bin/python scripts/bench-real-env.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from e2ewheels import build_e2e_index  # noqa: E402
from realenv import write_real_project  # noqa: E402
from realpython import build_python_channel  # noqa: E402


def _run(argv: list[str], environ: dict[str, str], cwd: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, env=environ, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[2:])} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def _measure(runs: int, step: Callable[[], float]) -> dict[str, float]:
    times = [step() for _ in range(runs)]
    return {
        "median_s": round(statistics.median(times), 2),
        "min_s": round(min(times), 2),
        "max_s": round(max(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-real-env-"))
    try:
        started = time.monotonic()
        channel = build_python_channel(scratch / "channel", scratch / "work")
        built_s = time.monotonic() - started
        index = build_e2e_index(scratch / "simple")
        root = write_real_project(scratch / "project", pip=("torch==2.13.0+cpu", "numpy==2.4.6"))
        cache = scratch / "cache"
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SETUP_TOOL_", "CONDA_OVERRIDE_"))
        }
        environ |= {"SETUP_TOOL_PROJECT": str(root), "SETUP_TOOL_CACHE": str(cache)}
        tool = [sys.executable, "-m", "setup_tool"]
        env_argv = [*tool, "env", "--variant", "cpu", "--channel", channel.url]
        env_argv += ["--pip-index-url", index.url]
        install_argv = [*tool, "install", "--variant", "cpu"]
        prefix, lock = root / ".envs" / "cpu", root / "envs" / "locks"

        def fresh(*paths: Path) -> None:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
            # Let the filesystem finish the deletion (journal, discards) before the clock starts.
            os.sync()

        def env_cold() -> float:
            fresh(prefix, cache, lock)
            return _run(env_argv, environ, root)

        def env_warm() -> float:
            fresh(prefix)
            return _run(env_argv, environ, root)

        def install_warm() -> float:
            fresh(prefix)
            return _run(install_argv, environ, root)

        def install_cold() -> float:
            fresh(prefix, cache)
            return _run(install_argv, environ, root)

        results = {
            "python_package_build_s": round(built_s, 2),
            "python_package_mb": round(channel.python.package.size / 1e6, 1),
            "env cold": _measure(args.runs, env_cold),
            "env no-op": _measure(args.runs, lambda: _run(env_argv, environ, root)),
            "env warm": _measure(args.runs, env_warm),
            "install warm": _measure(args.runs, install_warm),
            "install cold": _measure(args.runs, install_cold),
            "install no-op": _measure(args.runs, lambda: _run(install_argv, environ, root)),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # py-rattler's threads (index_fs) can crash a finalizing interpreter
