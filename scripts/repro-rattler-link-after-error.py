#!/usr/bin/env python3
"""Reproduce py-rattler writing into a prefix after ``install()`` has raised: the reason for
``setup_tool.install.prefix.remove_tree_settled`` (delete, wait, delete again).

What it shows: when one package fails to link (here: the target is a small tmpfs, so a copy
runs out of space), ``rattler.install`` raises the first error while the other packages' link
tasks go on. A ``shutil.rmtree`` of the target right after the exception then fails or is
undone: the tree is still there, and can still be growing, a moment later. Deleting once
would leave a half-built staging tree behind after a failed install.

Measured on a shared 2-core Linux machine, Python 3.11.7, py-rattler 0.28.0, a 3 MiB tmpfs,
60 packages of 100 small files each (cache on another filesystem, so files are copied):
the tree survived an immediate rmtree after 3 of 5 failed installs in one run (600-860
entries; one grew from 717 to 824 entries between 0.15 and 0.21 s after the error), and
after 1 of 6 in another (722 → 787 entries between 0.36 and 0.46 s). Once the growth stops
it stays (``remove_tree_settled`` deletes until the tree stays gone, at most 5 s).

Needs root (to mount the tmpfs) and Linux. Re-run it after a py-rattler upgrade; when no
attempt reports a surviving tree, a plain ``remove_tree`` is enough.

    sudo .venv/bin/python scripts/repro-rattler-link-after-error.py [--attempts 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from channel import PackageSpec, build_channel  # noqa: E402  (the test suite's channel)


def records(channel_root: Path, packages: int, files: int) -> list[object]:
    from rattler import IndexJson, PackageRecord, RepoDataRecord

    specs = [
        PackageSpec(
            f"pkg{i:03d}",
            "1.0",
            "0",
            0,
            "linux-64",
            files=tuple((f"share/pkg{i:03d}/f{j}.txt", f"{i} {j}\n" * 50) for j in range(files)),
        )
        for i in range(packages)
    ]
    channel = build_channel(channel_root, specs)
    found = []
    for built in channel.packages:
        index = IndexJson.from_package_archive(built.path)
        record = PackageRecord(
            name=built.name,
            version=index.version,
            build=index.build,
            build_number=0,
            subdir="linux-64",
            arch=index.arch,
            platform=index.platform,
            noarch=index.noarch,
            depends=[],
            constrains=[],
            sha256=bytes.fromhex(built.sha256),
            md5=None,
            size=built.size,
        )
        found.append(RepoDataRecord(record, built.filename, built.path.as_uri(), channel.url))
    return found


def attempt(recs: list[object], target: Path, cache: Path) -> str:
    import rattler

    try:
        asyncio.run(
            rattler.install(
                recs,
                target_prefix=target,
                cache_dir=cache,
                show_progress=False,
                installed_packages=[],
                platform=rattler.Subdir("linux-64"),
            )
        )
    except Exception as exc:
        failed_at = time.monotonic()
        shutil.rmtree(target, ignore_errors=True)
        seen = []
        for _ in range(20):
            time.sleep(0.05)
            if target.exists():
                entries = sum(1 for _ in target.rglob("*"))
                seen.append(f"{time.monotonic() - failed_at:.2f} s: {entries}")
        shutil.rmtree(target, ignore_errors=True)
        first = str(exc).splitlines()[0][:70]
        survived = f"tree still there ({', '.join(seen[:4])} entries...)" if seen else "gone"
        return f"{type(exc).__name__}: {first}; after one rmtree: {survived}"
    return "installed without error (the tmpfs was big enough: lower --disk)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--packages", type=int, default=60)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--disk", default="3m", help="tmpfs size (smaller than the env)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rattler-link-") as scratch:
        work = Path(scratch)
        recs = records(work / "channel", args.packages, args.files)
        disk = work / "disk"
        disk.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", f"size={args.disk}", "tmpfs", str(disk)]
        if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
            sys.exit("cannot mount a tmpfs (needs root on Linux)")
        try:
            for number in range(args.attempts):
                outcome = attempt(recs, disk / f"env{number}", work / f"pkgs{number}")
                print(f"attempt {number}: {outcome}")
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)


if __name__ == "__main__":
    main()
