"""Locks with ``manager: pip`` entries for the install tests: the local channel's cpu lock plus
real wheels from ``tests/wheels.py``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from wheels import BuiltWheel, WheelSpec, add_to_lock, build_wheel, pip_lock_entry

SITE = Path("lib/python3.12/site-packages")  # the test channel's cpu lock has python 3.12


def demo_lib(version: str = "1.0.0") -> WheelSpec:
    return WheelSpec(
        "demo-lib",
        version,
        files=(("demo_lib/__init__.py", f'__version__ = "{version}"\n'),),
    )


def demo_tool() -> WheelSpec:
    """A wheel with a console script, a data file and dependencies on a wheel and on conda."""
    return WheelSpec(
        "Demo.Tool",
        "2.1.0",
        files=(
            ("demo_tool/__init__.py", ""),
            (
                "demo_tool/cli.py",
                "import sys\n\ndef main():\n    import demo_lib\n"
                "    print('demo-tool', demo_lib.__version__, sys.argv[1:])\n",
            ),
        ),
        data=(("data", "share/demo-tool/README", "demo data\n"),),
        console_scripts=(("demo-tool", "demo_tool.cli:main"),),
        requires=("demo-lib>=1", "numpy>=1.23"),
    )


def build_demo(directory: Path) -> list[BuiltWheel]:
    return [build_wheel(directory, demo_lib()), build_wheel(directory, demo_tool())]


def lock_with(
    base: Path,
    dest: Path,
    wheels: Sequence[BuiltWheel],
    *,
    platform: str = "linux-64",
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> Path:
    """A copy of the conda lock ``base`` at ``dest`` with a pip entry per wheel; ``overrides``
    changes fields of the entry of the wheel so named (url, sha256, dependencies)."""
    entries = []
    for wheel in wheels:
        entry = pip_lock_entry(wheel, platform)
        entry.update((overrides or {}).get(wheel.name, {}))
        entries.append(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return add_to_lock(base, entries, dest)


def run_env_python(prefix: Path, code: str) -> str:
    """Run ``code`` with the environment's own (stub) Python; what it printed."""
    done = subprocess.run(
        [str(prefix / "bin/python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
