#!/usr/bin/env python3
"""How fast ``setup-tool install --dry-run`` answers on big locks: a benchmark, not a test.

A dry run must answer within 5 s on a lock of ~1,000 packages even when the network is down
or a proxy hangs: it reads the lock, runs the machine check and compares with the prefix, and
never contacts the channel (sizes it cannot know locally are reported as unknown).

Measured, each in a fresh process (``python -m setup_tool``), ``--runs`` times (default 5):

- a synthetic conda-lock file of ``--packages`` packages (default 1,000; https URLs on
  conda.anaconda.org, as a real lock has), behind an HTTP(S) proxy on 127.0.0.1 that accepts
  connections and never answers;
- the same lock with the proxy pointing at a refusing port (the network is down);
- a real lock if one is given (``--lock PATH``, e.g. a pangeo conda-lock file of 885 packages)
  behind the hanging proxy.

The proxy also counts the connections it received: a dry run makes none.

    .venv/bin/python scripts/bench-dry-run.py [--runs N] [--packages N] [--lock PATH] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

GOAL_S = 5.0


@contextlib.contextmanager
def hanging_proxy() -> Iterator[tuple[str, list[int]]]:
    """A proxy on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    accepted = [0]
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted[0] += 1
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def refusing_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def synthetic_lock(path: Path, count: int) -> None:
    """A conda-lock v1 file of ``count`` linux-64 packages with remote URLs and real-looking
    hashes; each depends on the one before it (so the completeness check has work to do)."""
    lines = [
        "version: 1",
        "metadata:",
        "  content_hash: {linux-64: '" + "0" * 64 + "'}",
        "  channels: [{url: conda-forge, used_env_vars: []}]",
        "  platforms: [linux-64]",
        "  sources: [environment.yml]",
        "package:",
    ]
    for index in range(count):
        name = f"pkg{index:04d}"
        digest = hashlib.sha256(name.encode()).hexdigest()
        deps = f"{{pkg{index - 1:04d}: '>=1.0', __glibc: '>=2.17,<3.0.a0'}}" if index else "{}"
        lines += [
            f"- name: {name}",
            "  version: 1.0.0",
            "  manager: conda",
            "  platform: linux-64",
            f"  dependencies: {deps}",
            f"  url: https://conda.anaconda.org/conda-forge/linux-64/{name}-1.0.0-h1234567_0.conda",
            f"  hash: {{md5: {digest[:32]}, sha256: {digest}}}",
            "  category: main",
            "  optional: false",
        ]
    path.write_text("\n".join(lines) + "\n")


def timed(lockfile: Path, prefix: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "setup_tool", "install", "--dry-run", "--json"]
    argv += ["--lockfile", str(lockfile), "--prefix", str(prefix)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dry run failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return seconds


def proxied(env: dict[str, str], proxy: str) -> dict[str, str]:
    names = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
    return {**env, **dict.fromkeys(names, proxy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--lock", type=Path, action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    base.update(CONDA_OVERRIDE_CUDA="13.0", CONDA_OVERRIDE_GLIBC="2.36")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        root = Path(tmp)
        base["SETUP_TOOL_CACHE"] = str(root / "cache")
        synthetic = root / f"synthetic-{args.packages}.conda-lock.yml"
        synthetic_lock(synthetic, args.packages)
        with hanging_proxy() as (proxy, accepted):
            cases = [(f"{args.packages} packages, hanging proxy", synthetic, proxied(base, proxy))]
            cases.append(
                (
                    f"{args.packages} packages, network down",
                    synthetic,
                    proxied(base, refusing_url()),
                )
            )
            cases += [
                (f"{lock.name}, hanging proxy", lock, proxied(base, proxy)) for lock in args.lock
            ]
            for label, lockfile, env in cases:
                times = [timed(lockfile, root / "env", env) for _ in range(args.runs)]
                results[label] = {
                    "median_s": round(statistics.median(times), 3),
                    "min_s": round(min(times), 3),
                    "max_s": round(max(times), 3),
                }
            connections = accepted[0]
    report = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "runs": args.runs,
        "goal_s": GOAL_S,
        "proxy_connections": connections,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"install --dry-run, {args.runs} runs each ({report['machine']}); goal <= {GOAL_S} s")
    for label, row in results.items():
        spread = f"(min {row['min_s']:.2f}, max {row['max_s']:.2f})"
        print(f"  {label:<55} median {row['median_s']:6.2f} s  {spread}")
    print(f"  connections the proxy received: {connections}")


if __name__ == "__main__":
    main()
