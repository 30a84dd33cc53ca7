"""What the doctor tests share: ``Platform`` values for machines, lock and prefix builders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import machines

from setup_tool.detect.facts import Gpu, Nvidia, Platform

# Machines detect's tests use too (tests/machines.py), under the names the doctor cases use.
NO_DRIVER = machines.CPU_ONLY
H200 = machines.LINUX_CUDA13
P100 = machines.LINUX_CUDA13_PASCAL
MAC_ARM = machines.MAC_ARM64
MAC_ROSETTA = machines.MAC_ROSETTA
MAC_OLD = machines.MAC_OLD_MACOS
EIGHT_H200 = machines.linux(
    nvidia=Nvidia("580.159.03", "13.0", tuple(replace(machines.H200, index=i) for i in range(8)))
)
A100_OLD_DRIVER = machines.linux(
    nvidia=Nvidia("535.154.05", "12.2", (Gpu(0, "NVIDIA A100-SXM4-40GB", 40960, "8.0"),))
)


def like_probe(probe: Mapping[str, Any]) -> Platform:
    """The machine a recording came from, as detect would see it (for recorded GPU runs)."""
    driver = probe.get("nvidia_driver") or {}
    gpus = tuple(
        Gpu(d["index"], d.get("name") or "", d.get("memory_mib"), d.get("capability"))
        for d in probe.get("devices") or ()
    )
    nvidia = Nvidia(driver["version"], driver.get("cuda"), gpus) if driver.get("version") else None
    system, machine = probe["python"]["system"], probe["python"]["machine"]
    return machines.linux(os=system, machine=machine, python_machine=machine, nvidia=nvidia)


LOCKED = [
    # name, version, build, categories
    ("python", "3.12.8", "h9e4cc4f_1_cpython", {"main"}),
    ("pytorch", "2.5.1", "cpu_mkl_py312_h6b6b5d1_108", {"main"}),
    ("numpy", "2.2.1", "py312h7e784f5_0", {"main"}),
    ("pytest", "8.3.4", "pyhd8ed1ab_1", {"dev"}),
]


def write_lock(path: Path, platform: str = "linux-64", pip: bool = False) -> Path:
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v2prelim.models import (
        HashModel,
        LockedDependency,
        Lockfile,
        LockMeta,
    )
    from conda_lock.models.channel import Channel

    packages = [
        LockedDependency(
            name=name,
            version=version,
            manager="conda",
            platform=platform,
            dependencies={},
            url=f"https://conda.anaconda.org/conda-forge/{platform}/{name}-{version}-{build}.conda",
            hash=HashModel(md5="0" * 32, sha256="0" * 64),
            categories=categories,
            build=build,
        )
        for name, version, build, categories in LOCKED
    ]
    if pip:
        packages.append(
            LockedDependency(
                name="tqdm",
                version="4.67.1",
                manager="pip",
                platform=platform,
                url="https://files.pythonhosted.org/tqdm-4.67.1-py3-none-any.whl",
                hash=HashModel(sha256="0" * 64),
                categories={"main"},
            )
        )
    lock = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={platform: "0" * 64},
            channels=[Channel.from_string("conda-forge")],
            platforms=[platform],
            sources=["envs/cpu.yml"],
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_conda_lock_file(lock, path, metadata_choices=None)
    return path


def install(prefix: Path, packages: list[tuple[str, str, str]], subdir: str = "linux-64") -> Path:
    """conda-meta records as py-rattler's installer writes them (the fields drift reads)."""
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    for name, version, build in packages:
        record = {"name": name, "version": version, "build": build, "subdir": subdir}
        (meta / f"{name}-{version}-{build}.json").write_text(json.dumps(record))
    (meta / "history").write_text("")
    return prefix


MAIN = [(n, v, b) for n, v, b, c in LOCKED if "main" in c]
