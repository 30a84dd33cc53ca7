"""Helpers for the install tests: a project locked against a channel, and ways to run install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from channel import LocalChannel, PackageSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Project:
    """A project directory with envs/ specs, locked against ``channel_url``."""

    root: Path
    cache: Path
    channel_url: str

    @property
    def lockfile(self) -> Path:
        return self.root / "envs/locks/cpu.conda-lock.yml"

    @property
    def prefix(self) -> Path:
        return self.root / ".envs/cpu"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a setup-tool run: this project, a private cache, the cpu variant."""
        return {
            "SETUP_TOOL_PROJECT": str(self.root),
            "SETUP_TOOL_CACHE": str(self.cache),
            "SETUP_TOOL_VARIANT": "cpu",
        }

    def relock(self, channel_url: str | None = None) -> None:
        from setup_tool.lock import lock_variants
        from setup_tool.variants import Variant

        lock_variants(
            self.root,
            [Variant.cpu],
            channels=[channel_url or self.channel_url],
            environ={},
            cache_dir=self.root / ".lock-cache",  # the lock's caches, not the package cache
        )


def make_project(tmp_path: Path, channel_url: str, *, locked: bool = True) -> Project:
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    for spec in (REPO_ROOT / "envs").glob("*.yml"):
        shutil.copy2(spec, root / "envs" / spec.name)
    project = Project(root, tmp_path / "cache", channel_url)
    if locked:
        project.relock()
    return project


_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'setup-tool'; from setup_tool.cli import main; main()"
)


def run_install_process(
    project: Project, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -m setup_tool install`` in a child process (for kills, Ctrl-C, concurrency).

    Python leaves SIGINT alone when it starts with SIGINT ignored, as a shell's background
    job does (``pytest ... &``, some CI runners); the child then would never see a Ctrl-C.
    ``_WITH_CTRL_C`` puts Python's own handler back before running the CLI, as a terminal
    session would have it.
    """
    env = {**os.environ, **project.env, **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, "install", *args],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def env_python_says(prefix: Path, code: str) -> str:
    """Run code with the environment's own (stub) Python and return what it printed."""
    result = subprocess.run(
        [str(prefix / "bin/python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def installed_numpy(prefix: Path) -> str:
    return env_python_says(prefix, "import numpy; print(numpy.__version__)")


def leftovers(prefix: Path) -> list[str]:
    """Staging or old directories an interrupted install could have left beside the prefix."""
    return sorted(
        p.name
        for p in prefix.parent.iterdir()
        if p.name.startswith(f".{prefix.name}.") and not p.name.endswith(".lock")
    )


def newer_numpy(channel: LocalChannel, version: str = "2.4.0") -> list[PackageSpec]:
    """A numpy release newer than the channel's, for every subdir (same dependencies)."""
    specs = []
    for built in channel.find("numpy"):
        old = built.spec
        module_path = old.files[0][0]
        specs.append(
            replace(
                old,
                version=version,
                build=old.build.replace("_0", "_1"),
                build_number=1,
                files=((module_path, f'__version__ = "{version}"\n'),),
            )
        )
    return specs
