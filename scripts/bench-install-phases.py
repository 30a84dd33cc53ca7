#!/usr/bin/env python3
"""Where a cold ``setup-tool install`` spends its time at real scale.

Two cold installs (empty cache, new prefix) of ``scripts/bench-install.py``'s channel over
file://, each output line stamped with the seconds since the start, so that the
fetch-and-verify phase (setup-tool's sha256 of every archive) and the linking phase
(py-rattler's extraction and linking into the staged prefix, then the swap) read apart. Not run
by ``make test``. The channel is built (or reused) in ``--work`` as bench-install.py does::

    python scripts/bench-install-phases.py --scale 0.25 --work /tmp/setup-tool-bench
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType


def load_bench_install() -> ModuleType:
    path = Path(__file__).with_name("bench-install.py")
    spec = importlib.util.spec_from_file_location("bench_install", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_install"] = module
    spec.loader.exec_module(module)
    return module


def stamped_install(lock: Path, prefix: Path, env: dict[str, str]) -> None:
    """One ``setup-tool install``, its output lines printed with the seconds they came at."""
    os.sync()  # the previous run's writes are not this run's work
    before = os.times()
    start = time.perf_counter()
    argv = [sys.executable, "-m", "setup_tool", "install", "--lockfile", str(lock)]
    with subprocess.Popen(
        [*argv, "--prefix", str(prefix)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(f"{time.perf_counter() - start:7.2f}  {line.rstrip()[:150]}", flush=True)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    print(f"{time.perf_counter() - start:7.2f}  exit {child.returncode}; CPU {cpu:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/setup-tool-bench"))
    parser.add_argument("--scale", type=float, default=0.25, help="multiply every size by this")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    bench = load_bench_install()
    packages = bench.read_model(bench.DEFAULT_LOCK, bench.DEFAULT_ROOTS, args.scale)
    channel = bench.build_channel(args.work / "channel", packages, lambda _: None)
    scratch = args.work / "phases"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    lock = bench.write_lock(scratch / "base.conda-lock.yml", channel.base, channel.url)
    for run in range(args.runs):
        env = {**bench._environment(packages), "SETUP_TOOL_CACHE": str(scratch / f"cache{run}")}
        stamped_install(lock, scratch / f"env{run}", {**env, "COLUMNS": "200"})
        shutil.rmtree(scratch / f"env{run}", ignore_errors=True)
        shutil.rmtree(scratch / f"cache{run}", ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
