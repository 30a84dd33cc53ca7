"""Projects whose environment is real: the ``python`` of ``tests/realpython.py`` (and, for the
end-to-end test, torch from a local wheel index). Specs are written the way a user would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from realpython import XY


def machine_glibc() -> str:
    """This machine's glibc (``2.36``): the real python needs the glibc it was built against,
    so the lock is solved for this machine's ``__glibc`` rather than the 2.28 baseline."""
    name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # "glibc 2.36"
    assert name == "glibc", name
    return version


def write_real_project(root: Path, *, pip: tuple[str, ...] = ()) -> Path:
    """``envs/base.yml`` (python, then a ``pip:`` section when given) and a linux-64-only
    ``envs/cpu.yml``; returns ``root``."""
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    lines = [
        "name: real",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={XY}",
    ]
    if pip:
        lines += ["  - pip:", *(f"      - {requirement}" for requirement in pip)]
    (envs / "base.yml").write_text("\n".join(lines) + "\n")
    (envs / "cpu.yml").write_text(
        "platforms:\n  - linux-64\ndependencies: []\nvirtual-packages:\n"
        f'  __glibc: "{machine_glibc()}"\n'
    )
    return root


PROBE = """
import ctypes, json, sqlite3, ssl, sys, sysconfig
import _ctypes, _sqlite3, _ssl
maps = [line.split()[-1] for line in open("/proc/self/maps") if "libpython" in line]
print(json.dumps({
    "prefix": sys.prefix, "exec_prefix": sys.exec_prefix, "base_prefix": sys.base_prefix,
    "executable": sys.executable, "version": sys.version.split()[0],
    "paths": sysconfig.get_paths(),
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "config_prefix": sysconfig.get_config_var("prefix"),
    "modules": {m.__name__: m.__file__ for m in (ssl, sqlite3, ctypes, _ctypes, _sqlite3, _ssl)},
    "libpython": sorted(set(maps)),
    "path": sys.path,
}))
"""


def probe_interpreter(python: Path) -> dict[str, object]:
    """What the interpreter at ``python`` says about where it lives (run with a clean
    environment: no PYTHONHOME/PYTHONPATH/LD_LIBRARY_PATH from the caller)."""
    environ = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run(
        [str(python), "-I", "-c", PROBE],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result
