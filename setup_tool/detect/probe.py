"""``probe()``: read this machine's facts into a ``Platform``, each with its source.

The readers live in ``nvidia.py``, ``macos.py`` and ``linux.py``; this module only calls the
ones that apply to the running OS and records where each fact came from and why any is
unknown. It never imports torch, and the slow sources (nvidia-smi) are bounded by timeouts.
"""

from __future__ import annotations

import os
import platform as stdlib_platform
import shutil
import sys
from collections.abc import Callable, Mapping
from typing import Any

from setup_tool.detect import linux, macos, nvidia
from setup_tool.detect.facts import Platform
from setup_tool.runner import Runner, run_command

CONDA_EXECUTABLES = ("conda", "mamba", "micromamba")


def probe(
    environ: Mapping[str, str] | None = None,
    runner: Runner = run_command,
    nvml_loader: Callable[[], Any] | None = None,
) -> Platform:
    """Everything setup-tool needs to know about the machine it runs on."""
    environ = os.environ if environ is None else environ
    os_name = stdlib_platform.system().lower()
    python_machine = stdlib_platform.machine().lower()
    sources: dict[str, str] = {"os": "platform.system()", "machine": "platform.machine()"}
    unknown: dict[str, str] = {}
    facts: dict[str, Any] = {
        "os": os_name,
        "machine": python_machine,
        "python_version": stdlib_platform.python_version(),
        "python_machine": python_machine,
        "python_executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "conda_executables": _conda_executables(environ),
    }
    sources["cpu.count"] = "os.cpu_count()"

    if os_name == "darwin":
        facts.update(_macos_facts(runner, sources, unknown))
    elif os_name == "linux":
        facts.update(_linux_facts(sources, unknown))
        reading_nv = nvidia.read_nvidia(runner, nvml_loader=nvml_loader)
        facts["nvidia"] = reading_nv.nvidia
        sources.update(reading_nv.sources)
        unknown.update(reading_nv.unknown)
    else:
        unknown["nvidia"] = f"not read on {os_name}"

    if environ.get("CUDA_VISIBLE_DEVICES") is not None:
        facts["cuda_visible_devices"] = environ["CUDA_VISIBLE_DEVICES"]
    if facts.get("memory_bytes") is None:
        facts["memory_bytes"] = _sysconf_memory()
        if facts["memory_bytes"]:
            sources["cpu.memory_bytes"] = "sysconf"
    return Platform(**facts, sources=sources, unknown=unknown)


def _macos_facts(
    runner: Runner, sources: dict[str, str], unknown: dict[str, str]
) -> dict[str, Any]:
    reading = macos.read_macos(runner, stdlib_platform.mac_ver()[0] or None)
    facts: dict[str, Any] = {
        "macos_version": reading.version,
        "apple_silicon": reading.apple_silicon,
        "rosetta": reading.rosetta,
        "cpu_model": reading.cpu_model,
        "memory_bytes": reading.memory_bytes,
    }
    if reading.error:
        unknown["macos"] = reading.error
    else:
        sources.update(
            {
                "macos.version": "sysctl kern.osproductversion",
                "macos.apple_silicon": "sysctl hw.optional.arm64",
                "macos.rosetta": "sysctl sysctl.proc_translated",
                "cpu.model": "sysctl machdep.cpu.brand_string",
                "cpu.memory_bytes": "sysctl hw.memsize",
            }
        )
    if reading.apple_silicon:
        # Under Rosetta platform.machine() says x86_64; the hardware is still arm64.
        facts["machine"] = "arm64"
        sources["machine"] = "sysctl hw.optional.arm64"
    return facts


def _linux_facts(sources: dict[str, str], unknown: dict[str, str]) -> dict[str, Any]:
    facts: dict[str, Any] = {"kernel": stdlib_platform.release()}
    sources["linux.kernel"] = "platform.release()"
    glibc = _glibc_version()
    if glibc:
        facts["glibc_version"] = glibc
        sources["linux.glibc"] = "confstr(CS_GNU_LIBC_VERSION)"
    else:
        unknown["linux.glibc"] = "not a glibc system (musl?); conda-forge packages need glibc"
    distribution, where = linux.read_distribution()
    facts["distribution"] = distribution
    if where:
        sources["linux.distribution"] = where
    cpuinfo = linux.read_text(linux.CPUINFO)
    facts["cpu_model"] = linux.parse_cpuinfo_model(cpuinfo) if cpuinfo else None
    if facts["cpu_model"]:
        sources["cpu.model"] = str(linux.CPUINFO)
    meminfo = linux.read_text(linux.MEMINFO)
    facts["memory_bytes"] = linux.parse_meminfo_total(meminfo) if meminfo else None
    if facts["memory_bytes"]:
        sources["cpu.memory_bytes"] = str(linux.MEMINFO)
    return facts


def _glibc_version() -> str | None:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        value = None
    if value and value.startswith("glibc "):
        return value.split()[1]
    lib, version = stdlib_platform.libc_ver()
    return version if lib == "glibc" and version else None


def _sysconf_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _conda_executables(environ: Mapping[str, str]) -> dict[str, str]:
    """conda / mamba / micromamba on PATH, or named by CONDA_EXE / MAMBA_EXE (informational)."""
    found = {}
    for name in CONDA_EXECUTABLES:
        path = shutil.which(name, path=environ.get("PATH"))
        if path:
            found[name] = path
    for variable, name in (("CONDA_EXE", "conda"), ("MAMBA_EXE", "micromamba")):
        if name not in found and environ.get(variable):
            found[name] = environ[variable]
    return found
