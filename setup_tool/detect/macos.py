"""Reading macOS facts from one ``sysctl`` call: version, Apple Silicon, Rosetta, CPU, memory.

``sysctl.proc_translated`` is 1 when this process runs under Rosetta (then it cannot use MPS);
``hw.optional.arm64`` is 1 on Apple Silicon even from a translated process (Apple, "About the
Rosetta translation environment"; pytorch/pytorch#146236). Keys
that do not exist (both of those on an Intel Mac) make sysctl complain on stderr and exit
non-zero while still printing the others, so the output is read line by line, not by status.
"""

from __future__ import annotations

from dataclasses import dataclass

from setup_tool.runner import Runner

SYSCTL_KEYS = (
    "kern.osproductversion",
    "hw.optional.arm64",
    "sysctl.proc_translated",
    "machdep.cpu.brand_string",
    "hw.memsize",
)


@dataclass(frozen=True)
class MacReading:
    version: str | None
    apple_silicon: bool | None
    rosetta: bool | None
    cpu_model: str | None
    memory_bytes: int | None
    error: str | None = None


def parse_sysctl(text: str) -> dict[str, str]:
    """``key: value`` lines (sysctl without ``-n``) → a dict; other lines are ignored."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in SYSCTL_KEYS:
            values[key.strip()] = value.strip()
    return values


def mac_reading_from(values: dict[str, str], fallback_version: str | None = None) -> MacReading:
    """Interpret sysctl values. A missing arm64 / translated key means "no" (Intel Mac)."""
    memsize = values.get("hw.memsize", "")
    return MacReading(
        version=values.get("kern.osproductversion") or fallback_version or None,
        apple_silicon=values.get("hw.optional.arm64", "0") == "1",
        rosetta=values.get("sysctl.proc_translated", "0") == "1",
        cpu_model=values.get("machdep.cpu.brand_string") or None,
        memory_bytes=int(memsize) if memsize.isdigit() else None,
    )


def read_macos(runner: Runner, fallback_version: str | None = None) -> MacReading:
    """Run sysctl once; ``fallback_version`` (``platform.mac_ver()``) covers macOS < 10.13.4."""
    result = runner(["sysctl", *SYSCTL_KEYS], timeout=5.0)
    if result.error:
        return MacReading(fallback_version or None, None, None, None, None, error=result.error)
    return mac_reading_from(parse_sysctl(result.stdout), fallback_version)
