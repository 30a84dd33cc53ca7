"""Reading Linux facts from files: distribution, CPU model, memory.

Paths are parameters so tests can point them at captured files in ``tests/data/``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

OS_RELEASE = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")


def parse_os_release(text: str) -> str | None:
    """PRETTY_NAME (else NAME VERSION) from os-release(5) text."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:
                values[key.strip()] = " ".join(shlex.split(value))
            except ValueError:
                values[key.strip()] = value.strip().strip("\"'")
    if values.get("PRETTY_NAME"):
        return values["PRETTY_NAME"]
    name = " ".join(v for v in (values.get("NAME"), values.get("VERSION")) if v)
    return name or None


def parse_cpuinfo_model(text: str) -> str | None:
    """The CPU model: "model name" on x86, else the "Hardware" / "Model" lines of ARM kernels."""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return None


def parse_meminfo_total(text: str) -> int | None:
    """MemTotal in bytes from /proc/meminfo."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                return int(parts[1]) * (1024 if unit == "kb" else 1)
    return None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def read_distribution(paths: tuple[Path, ...] = OS_RELEASE) -> tuple[str | None, str | None]:
    """(distribution, source path) from the first os-release file that exists."""
    for path in paths:
        text = read_text(path)
        if text is not None:
            return parse_os_release(text), str(path)
    return None, None
