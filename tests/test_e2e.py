"""End to end, for real: ``setup-tool env`` makes an environment with a real interpreter and real
torch, ``doctor`` passes in it, and ``bench`` trains in it.

The conda side is the interpreter running the tests, packaged (``tests/realpython.py``), with a
conda ``pip``; the pip side is the real torch CPU wheel and its dependencies from a local index
(``tests/e2ewheels.py``; ``make e2e-wheels`` fetches them once). The spec is what a user writes:
``python=3.X`` and a ``pip:`` section naming torch and numpy. Every command runs as its own
process through the real entry point (``python -m setup_tool``), with nothing on the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ewheels import build_e2e_index, cached_wheels
from realenv import write_real_project
from realpython import XY, RealPythonChannel

pytestmark = pytest.mark.slow

TORCH = "2.13.0+cpu"
SPEC_PIP = (f"torch=={TORCH}", "numpy==2.4.6")
COMMAND_TIMEOUT_S = 900  # a hang is the failure this bounds; a loaded 2-core run takes ~1 min


@dataclass(frozen=True)
class RealProject:
    root: Path
    channel: str
    index: str
    environ: dict[str, str]

    @property
    def prefix(self) -> Path:
        return self.root / ".envs" / "cpu"

    def setup_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "setup_tool", *args],
            cwd=self.root,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    def env(self) -> subprocess.CompletedProcess[str]:
        return self.setup_tool(
            "env", "--variant", "cpu", "--channel", self.channel, "--pip-index-url", self.index
        )

    def python(self, code: str) -> str:
        return self.run(str(self.prefix / "bin" / "python"), "-c", code)

    def run(self, *argv: str) -> str:
        """Run a program of the environment with nothing of the caller's environment."""
        done = subprocess.run(
            argv,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.root)},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def real_project(
    tmp_path_factory: pytest.TempPathFactory, real_python: RealPythonChannel
) -> Iterator[RealProject]:
    """A project locked and installed by ``setup-tool env`` (the first test checks that run).

    The index holds a copy of ~215 MB of wheels, removed with the project afterwards.
    """
    cached_wheels()  # fails with the command to run when the cache is missing
    base = tmp_path_factory.mktemp("e2e")
    index = build_e2e_index(base / "simple")
    root = write_real_project(base / "project", pip=SPEC_PIP)
    # Module-scoped, so set up before conftest's per-test clean environment: drop what would
    # change setup-tool's decisions here too.
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SETUP_TOOL_", "CONDA_OVERRIDE_"))
        and name != "CUDA_VISIBLE_DEVICES"
    }
    environ["SETUP_TOOL_PROJECT"] = str(root)
    environ["SETUP_TOOL_CACHE"] = str(base / "cache")
    yield RealProject(root, real_python.url, index.url, environ)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def first_env(real_project: RealProject) -> subprocess.CompletedProcess[str]:
    return real_project.env()


def test_env_locks_installs_and_the_doctor_passes_for_real(first_env, real_project) -> None:  # type: ignore[no-untyped-def]
    assert first_env.returncode == 0, first_env.stdout + first_env.stderr
    err = first_env.stderr
    assert "lock: envs/locks/cpu.conda-lock.yml is missing; locking" in err
    assert "locking the pip section of cpu for linux-64" in err
    assert "install: .envs/cpu installed" in err
    assert "doctor: cpu (expected) passed the placement check" in err
    assert str(real_project.prefix / "bin" / "python") in first_env.stdout  # "Use it: ..."

    lock = (real_project.root / "envs/locks/cpu.conda-lock.yml").read_text()
    assert "manager: pip" in lock and f"torch-{TORCH.replace('+', '%2B')}-" in lock


def test_the_environment_is_its_own_python_with_the_locked_torch(first_env, real_project) -> None:  # type: ignore[no-untyped-def]
    assert first_env.returncode == 0, first_env.stderr
    said = json.loads(
        real_project.python(
            "import json, sys, torch, numpy\n"
            "from importlib import metadata\n"
            "dist = metadata.distribution('torch')\n"
            "print(json.dumps({'prefix': sys.prefix, 'torch': torch.__version__,\n"
            "    'torch_file': torch.__file__, 'numpy': numpy.__version__,\n"
            "    'sum': float(torch.ones(3, 4).sum()),\n"
            "    'installer': dist.read_text('INSTALLER'), 'record': bool(dist.files),\n"
            "    'dists': sorted(d.metadata['Name'].lower() for d in metadata.distributions())}))"
        )
    )
    prefix = real_project.prefix
    assert said["prefix"] == str(prefix)
    assert said["torch"] == TORCH
    assert said["torch_file"] == str(prefix / f"lib/python{XY}/site-packages/torch/__init__.py")
    assert said["numpy"] == "2.4.6"
    assert said["sum"] == 12.0
    # Installed as an installer must: INSTALLER and RECORD written, so pip and
    # importlib.metadata see every wheel (and the conda pip package's own dist-info).
    assert said["installer"].strip()
    assert said["record"] is True
    assert {"torch", "numpy", "sympy", "jinja2", "markupsafe", "pip"} <= set(said["dists"])
    assert "torchvision" not in said["dists"]


def test_doctor_passes_on_the_cpu_with_the_installed_torch(first_env, real_project) -> None:  # type: ignore[no-untyped-def]
    assert first_env.returncode == 0, first_env.stderr
    done = real_project.setup_tool("doctor", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["exit_code"] == 0
    assert (
        Path(report["interpreter"]["python"]).resolve()
        == (real_project.prefix / "bin/python").resolve()
    )
    probe = report["probe"]
    assert probe["torch"]["imported"] is True
    assert probe["torch"]["version"] == TORCH
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["placement.cpu"]["status"] == "pass", checks["placement.cpu"]
    # The lock-drift check covers the pip packages too: the environment is the lock, exactly.
    assert checks["lock"]["status"] == "pass", checks["lock"]
    assert not [c for c in checks.values() if c["status"] == "fail"], checks


def test_bench_trains_inside_the_environment(first_env, real_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert first_env.returncode == 0, first_env.stderr
    results = tmp_path / "results"
    done = real_project.setup_tool(
        "bench",
        "--device",
        "cpu",
        "--max-steps",
        "20",
        "--warmup-steps",
        "1",
        "--test-limit",
        "256",
        "--results-dir",
        str(results),
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = json.loads(done.stdout)
    assert summary["epochs_completed"] == 1
    assert summary["samples_per_second"] > 0
    assert 0 < summary["train_loss"] < 10
    run = json.loads(Path(summary["path"]).read_text())
    assert run["torch"]["version"] == TORCH
    assert run["machine"]["prefix"] == str(real_project.prefix)
    assert run["machine"]["python_executable"] == str(real_project.prefix / "bin/python")


def test_a_second_env_changes_nothing_and_still_passes(first_env, real_project) -> None:  # type: ignore[no-untyped-def]
    assert first_env.returncode == 0, first_env.stderr
    again = real_project.env()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "lock: envs/locks/cpu.conda-lock.yml is up to date" in again.stderr
    assert "install: .envs/cpu is up to date" in again.stderr
    assert "doctor: cpu (expected) passed the placement check" in again.stderr
