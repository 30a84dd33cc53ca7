#!/usr/bin/env python3
"""How fast the everyday commands are, each in a fresh process: a benchmark, not a test.

The test suite asserts behaviour only; a wall-clock bound fails at random on a loaded machine.
The figures the tests used to check live here instead:

- ``setup-tool --help`` and ``detect`` (process start, imports);
- ``lock --variant all`` against a local channel (6 solves; conda-lock file writing);
- ``lock`` against a refusing ``127.0.0.1`` port (how soon an unreachable channel is reported);
- ``install`` into a new prefix (the 9-package test channel), then the no-op ``install``
  ("is up to date"; goal <= 1 s).

The channel is the test suite's (``tests/channel.py``), built in a temporary directory; nothing
leaves it. Each command runs ``--runs`` times (default 5): median, min and max wall seconds.

    .venv/bin/python scripts/bench-cli.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from channel import build_channel  # noqa: E402  (the test suite's channel builder)

GOALS = {"install (no-op)": 1.0}


def timed(args: tuple[str, ...], env: dict[str, str], expect: int = 0) -> float:
    """Wall seconds of ``python -m setup_tool ARGS`` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "setup_tool", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"unexpected exit {done.returncode}: {done.args}\n{done.stderr}")
    return seconds


def project(root: Path, name: str) -> Path:
    target = root / name
    (target / "envs").mkdir(parents=True)
    for spec in (REPO / "envs").glob("*.yml"):
        (target / "envs" / spec.name).write_text(spec.read_text())
    return target


def measure(runs: int, scratch: Path) -> dict[str, list[float]]:
    channel = build_channel(scratch / "channel").url
    with socket.socket() as refusing:  # bound, not listening: connections are refused
        refusing.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{refusing.getsockname()[1]}/conda-forge"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SETUP_TOOL_")}
        figures: dict[str, list[float]] = {}

        def add(name: str, seconds: float) -> None:
            figures.setdefault(name, []).append(seconds)

        for i in range(runs):
            root = project(scratch, f"p{i}")
            env = {
                **base,
                "SETUP_TOOL_PROJECT": str(root),
                "SETUP_TOOL_CACHE": str(root / ".cache"),
                "SETUP_TOOL_VARIANT": "cpu",
            }
            add("--help", timed(("--help",), env))
            add("detect", timed(("detect",), env))
            lock_all = ("lock", "--variant", "all", "--channel", channel)
            add("lock --variant all", timed(lock_all, env))
            unreachable = ("lock", "--variant", "cpu", "--channel", refused)
            add("lock (refused channel)", timed(unreachable, env, expect=1))
            add("install (new prefix)", timed(("install",), env))
            add("install (no-op)", timed(("install",), env))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as scratch:
        figures = measure(args.runs, Path(scratch))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}), "
        f"Python {platform.python_version()}, {args.runs} runs each, wall seconds per process"
    )
    print("| command | median | min | max | goal |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in figures.items():
        goal = f"<= {GOALS[name]:g} s" if name in GOALS else ""
        print(
            f"| `{name}` | {statistics.median(values):.2f} | {min(values):.2f} | "
            f"{max(values):.2f} | {goal} |"
        )


if __name__ == "__main__":
    main()
