#!/usr/bin/env python3
"""Reproduce py-rattler's crash at interpreter shutdown, the reason for ``os._exit`` in
``setup_tool.cli.main`` and ``tests/conftest.py``.

What it shows: a process that makes one py-rattler async call (``index_fs`` on an empty
channel directory, the smallest one) and then returns normally dies while Python finalizes,
in a sizeable share of runs, with

    Fatal Python error: PyGILState_Release: thread state ... must be current when releasing
    Python runtime state: finalizing

(SIGABRT, exit 134) or a bare SIGSEGV (exit 139), after all of its own work succeeded.
``solve`` and ``install`` do the same, less often. The cause is upstream: py-rattler resolves
its asyncio futures from tokio threads (pyo3-async-runtimes' ``future_into_py``), and such a
thread can still be taking or releasing the GIL when the main thread has started finalizing
(PyO3/pyo3-async-runtimes#40, open; CPython makes late GIL takers hang instead of crash only
from 3.14, python/cpython#87135).

Measured on a shared 2-core Linux machine, Python 3.11.7, py-rattler 0.28.0 (the newest on
PyPI when written), 40 runs each:

    --exit normal   9/40 crashed (22%: 8 SIGSEGV, 1 SIGABRT)
    --exit sleep    0/40 (a 0.2 s sleep before exit: the late thread finishes; timing-based)
    --exit os-exit  0/40 (flush, then os._exit: no finalization, nothing left to crash)

The workaround is ``--exit os-exit``: setup-tool flushes its output and leaves without
finalizing. Re-run this after a py-rattler upgrade; when ``--exit normal`` stops crashing,
the workaround can go.

    .venv/bin/python scripts/repro-rattler-shutdown.py [--runs 40] [--exit normal|sleep|os-exit]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path


def child(channel: Path, how: str) -> None:
    """One py-rattler call, then leave the way ``how`` says."""
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    if how == "sleep":
        time.sleep(0.2)
    elif how == "os-exit":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    # "normal": return, and let the interpreter finalize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--exit", choices=("normal", "sleep", "os-exit"), default="normal")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.exit)
        return
    codes: collections.Counter[int] = collections.Counter()
    example = ""
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rattler-shutdown-") as scratch:
            argv = [sys.executable, __file__, "--child", f"{scratch}/channel", "--exit", args.exit]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        codes[done.returncode] += 1
        if done.returncode != 0 and not example:
            example = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "(no output)"
    crashed = args.runs - codes[0]
    print(
        f"py-rattler {version('py-rattler')}, Python {sys.version.split()[0]}, --exit {args.exit}: "
        f"{crashed}/{args.runs} runs crashed at shutdown ({100 * crashed / args.runs:.0f}%); "
        f"exit codes {dict(sorted(codes.items()))}"
    )
    if example:
        print(f"first crash said: {example}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
