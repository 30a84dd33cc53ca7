#!/usr/bin/env python3
"""Benchmark: setup-tool's pip phase against ``uv pip install --no-deps`` of the same wheels.

Not run by ``make test``. Both tools install the same wheel files, read from the same local
directory (setup-tool's package cache, ``archives/<sha256>/<file>``, filled before timing),
into a fresh virtual environment of the Python running this script (a real interpreter, the
stand-in for a conda prefix's Python). Every run is a child process; the variants take turns,
round after round (``--repeat`` rounds), so that a change in the machine's load hits them all;
for each the median wall time and the median CPU time (user + system, of the child) are
reported: on a shared machine the CPU time is the steadier measure of the work done.

- ``setup-tool``: what ``install`` does for the pip part of a lock: the cached wheels
  verified (``download.fetch_all``), then ``wheelinstall.install_wheels`` into a staging
  directory with the final prefix's interpreter in the scripts, then the rename; ``--workers``
  threads (1 = one wheel after the other). Two states of setup-tool's cache: ``hashed``, no
  stamps (every wheel's sha256 computed, as on a first install from a ``file://`` index or
  right after the download), and ``stamped`` (a repeat install into a new prefix: each
  wheel's stamp matches, nothing is hashed);
- ``uv cold``: ``uv pip install --no-deps --offline --require-hashes`` of the same files with an
  empty uv cache (uv unzips each wheel into its cache, then links from there);
- ``uv warm``: the same with uv's cache already holding the unzipped wheels (the second
  install of the same wheels), with uv's default link mode (hard links on Linux) and with
  ``--link-mode=copy``;
- ``--compile-bytecode`` variants of uv, for reference (setup-tool does not byte-compile).

Example (the real torch CPU wheel and its small dependencies)::

    python scripts/bench-pip.py --uv "$(which uv)" --repeat 3 \\
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \\
        filelock-*.whl typing_extensions-*.whl sympy-*.whl mpmath-*.whl networkx-*.whl \\
        jinja2-*.whl markupsafe-*.whl fsspec-*.whl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fill_cache(wheels: list[Path], cache: Path) -> list[tuple[Path, str]]:
    """Put the wheels where setup-tool's cache keeps them; (cached path, sha256) of each."""
    cached = []
    for wheel in wheels:
        digest = sha256_of(wheel)
        target = cache / "archives" / digest / wheel.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, target)
        cached.append((target, digest))
    return cached


def new_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def ours_child(cached: list[tuple[Path, str]], cache: Path, scratch: Path, workers: int) -> float:
    from setup_tool.install.download import PackageCache, fetch_all
    from setup_tool.install.wheelinstall import install_wheels
    from setup_tool.install.wheels import PythonTarget

    final = new_venv(scratch / "env")
    staging = scratch / ".env.staging"
    final.rename(staging)
    wheels = _locked(cached)
    python = PythonTarget(sys.version_info[:2], f"cp{sys.version_info[0]}{sys.version_info[1]}")
    cpu = _own_cpu()
    started = time.perf_counter()
    fetched = fetch_all(wheels, PackageCache(cache))  # verifies every cached wheel's sha256
    install_wheels(
        fetched,
        staging=staging,
        final_prefix=final,
        python=python,
        platform="linux-64",
        workers=workers,
    )
    staging.rename(final)
    wall = time.perf_counter() - started
    print(json.dumps([wall, _own_cpu() - cpu]))
    return wall


def ours(
    cached: list[tuple[Path, str]], cache: Path, scratch: Path, workers: int, stamped: bool
) -> tuple[float, float]:
    """``ours_child`` in a child process: (wall, CPU) seconds of the install itself."""
    if not stamped:
        shutil.rmtree(cache / "stamps", ignore_errors=True)  # every wheel is hashed again
    else:
        prime_stamps(cached, cache)
    spec = json.dumps([[str(p), d] for p, d in cached])
    argv = [sys.executable, __file__, "--child", spec, str(cache), str(scratch), str(workers)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    wall, cpu = json.loads(done.stdout.splitlines()[-1])
    return wall, cpu


def prime_stamps(cached: list[tuple[Path, str]], cache: Path) -> None:
    """Verify every wheel once, so that the next fetch trusts their stamps (a repeat install)."""
    from setup_tool.install.download import PackageCache, fetch_all

    fetch_all(_locked(cached), PackageCache(cache))


def _locked(cached: list[tuple[Path, str]]) -> list[Any]:
    from packaging.utils import parse_wheel_filename

    from setup_tool.install.wheels import LockedWheel

    return [
        LockedWheel(
            str(parse_wheel_filename(path.name)[0]),
            str(parse_wheel_filename(path.name)[1]),
            path.as_uri(),
            digest,
            "linux-64",
        )
        for path, digest in cached
    ]


def uv(
    uv_bin: str, cached: list[tuple[Path, str]], uv_cache: Path, scratch: Path, *extra: str
) -> tuple[float, float]:
    from packaging.utils import parse_wheel_filename

    venv = new_venv(scratch / "env")
    requirements = scratch / "requirements.txt"
    requirements.write_text(
        "".join(
            f"{parse_wheel_filename(path.name)[0]} @ {path.as_uri()} --hash=sha256:{digest}\n"
            for path, digest in cached
        )
    )
    argv = [
        uv_bin, "pip", "install", "--no-deps", "--offline", "--require-hashes", "--quiet",
        "--python", str(venv / "bin/python"), "-r", str(requirements), *extra,
    ]  # fmt: skip
    env = {**os.environ, "UV_CACHE_DIR": str(uv_cache), "UV_NO_CONFIG": "1"}
    before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env)
    return time.perf_counter() - started, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Run = Callable[[Path], tuple[float, float]]


def measure_all(variants: list[tuple[str, Run]], repeat: int, root: Path) -> list[dict[str, Any]]:
    """Each variant once per round, ``repeat`` rounds; the medians of wall and CPU time."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    for _ in range(repeat):
        for name, run in variants:
            scratch = Path(tempfile.mkdtemp(dir=root))
            try:
                times[name].append(run(scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    results = []
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        shown = ", ".join(f"{w:.1f}" for w, _ in runs)
        print(f"{name:<40} wall {wall:6.2f} s  cpu {cpu:6.2f} s   (walls: {shown})")
        results.append({"name": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                        "runs": [[round(w, 3), round(c, 3)] for w, c in runs]})  # fmt: skip
    return results


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        spec, cache, scratch, workers = sys.argv[2:6]
        cached = [(Path(p), d) for p, d in json.loads(spec)]
        ours_child(cached, Path(cache), Path(scratch), int(workers))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--uv", default=shutil.which("uv"), help="the uv executable")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--scratch", type=Path, default=None, help="where to work (same disk)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--no-compile-variant", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-pip-", dir=args.scratch))
    try:
        cache = root / "cache"
        cached = fill_cache(args.wheels, cache)
        size = sum(path.stat().st_size for path, _ in cached)
        print(f"{len(cached)} wheels, {size / 2**20:.0f} MiB, Python {sys.version.split()[0]}")
        variants: list[tuple[str, Run]] = [
            (
                f"setup-tool, {w} worker(s), {'stamped' if st else 'hashed'}",
                lambda s, w=w, st=st: ours(cached, cache, s, w, st),
            )
            for w in args.workers
            for st in (False, True)
        ]
        if args.uv:
            warm_cache = root / "uv-warm-cache"
            uv(args.uv, cached, warm_cache, Path(tempfile.mkdtemp(dir=root)))  # fill it once

            def cold(*extra: str) -> Run:
                return lambda s: uv(args.uv, cached, s / "uv-cache", s, *extra)

            def warm(*extra: str) -> Run:
                return lambda s: uv(args.uv, cached, warm_cache, s, *extra)

            variants += [
                ("uv cold cache", cold()),
                ("uv warm cache (hard links)", warm()),
                ("uv warm cache, --link-mode=copy", warm("--link-mode=copy")),
            ]
            if not args.no_compile_variant:
                variants.append(("uv cold cache, --compile-bytecode", cold("--compile-bytecode")))
        results = measure_all(variants, args.repeat, root)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
