"""Locking a ``- pip:`` section: uv against local wheel indexes (``tests/wheel_index.py``),
conda-provided packages left to conda, hashes, determinism, ``--check``, conda-lock's reader
and renderer, and the bad inputs (unreachable index, conflict with conda, sdist only)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from channel import LocalChannel
from lock_pip_helpers import channel_with_pip, parse, pip_entries
from wheel_index import WheelIndex, build_index, serve_index
from wheels import WheelSpec, build_wheel

from setup_tool.errors import ChannelUnreachable, SolveError, UsageError
from setup_tool.lock import check_lock, lock_variant
from setup_tool.paths import lockfile_path
from setup_tool.variants import Variant

LINUX = "cp312-cp312-manylinux_2_28_x86_64"
WHEELS = [
    WheelSpec(
        "alpha",
        "1.0",
        requires=("beta>=2", "numpy>=1.20", "gamma; sys_platform == 'darwin'", "eps[fast]"),
    ),
    WheelSpec("beta", "2.1"),
    WheelSpec("beta", "3.0"),
    WheelSpec("gamma", "1.0"),
    WheelSpec("eps", "1.0", requires=("zeta; extra == 'fast'", "omega; extra == 'slow'")),
    WheelSpec("zeta", "0.5"),
    WheelSpec("omega", "0.1"),
    # The index's own numpy: never locked, since conda provides numpy 2.3.5.
    WheelSpec("numpy", "2.3.5", "cp312", "cp312", "manylinux_2_28_x86_64"),
    WheelSpec("numpy", "1.26.4", "cp312", "cp312", "manylinux_2_28_x86_64"),
    WheelSpec("delta", "1.0", requires=("numpy<2",)),
    # One wheel per platform; 1.1 needs glibc 2.34, newer than the lock's __glibc 2.28.
    *(
        WheelSpec("plat", "1.0", "cp312", "cp312", tag)
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_14_0_arm64")
    ),
    WheelSpec("plat", "1.1", "cp312", "cp312", "manylinux_2_34_x86_64"),
]


def _sdist(directory: Path, name: str, version: str) -> Path:
    import io
    import tarfile

    path = directory / f"{name}-{version}.tar.gz"
    data = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def pip_channel(local_channel: LocalChannel, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test channel plus conda-forge's ``pip`` (``lock_pip_helpers.PIP_PACKAGE``)."""
    return channel_with_pip(local_channel, tmp_path_factory.mktemp("pip-channel"))


@pytest.fixture(scope="session")
def wheel_index(tmp_path_factory: pytest.TempPathFactory) -> WheelIndex:
    built = tmp_path_factory.mktemp("wheels")
    files = [build_wheel(built, spec).path for spec in WHEELS]
    files.append(_sdist(built, "sdonly", "1.0"))
    return build_index(tmp_path_factory.mktemp("index") / "simple", files)


def add_pip(project: Path, *requirements: str, file: str = "base.yml") -> None:
    path = project / "envs" / file
    lines = "".join(f"      - {r}\n" for r in requirements)
    path.write_text(path.read_text() + f"  - pip:\n{lines}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pip_project(project: Path) -> Path:
    add_pip(project, "alpha", "plat")
    return project


def lock_cpu(project: Path, channel: str, index: str, **options: Any) -> Any:
    return lock_variant(
        project, Variant.cpu, channels=[channel], pip_indexes=[index], environ={}, **options
    )


# --- What the pip entries hold ------------------------------------------------------------------


def test_pip_entries_per_platform(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    result = lock_cpu(pip_project, pip_channel, wheel_index.url)
    lock = parse(result.path)
    linux = pip_entries(lock, "linux-64")
    assert sorted(linux) == ["alpha", "beta", "eps", "plat", "zeta"]  # no numpy, gamma, omega
    assert linux["beta"].version == "3.0"
    assert linux["plat"].version == "1.0"  # 1.1's only wheel needs glibc 2.34
    assert linux["plat"].url.endswith("/plat-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    wheel = wheel_index.file("plat-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    assert linux["plat"].url == wheel.resolve().as_uri()
    assert linux["plat"].hash.sha256 == sha256(wheel) and linux["plat"].hash.md5 is None
    assert linux["alpha"].dependencies == {"beta": ">=2", "eps": "*", "numpy": ">=1.20"}
    assert linux["eps"].dependencies == {"zeta": "*"}  # the extra alpha asks for, not `slow`
    assert all(p.categories == {"main"} for p in linux.values())

    osx = pip_entries(lock, "osx-arm64")
    assert sorted(osx) == ["alpha", "beta", "eps", "gamma", "plat", "zeta"]
    assert osx["alpha"].dependencies["gamma"] == "*"
    assert osx["plat"].url.endswith("/plat-1.0-cp312-cp312-macosx_14_0_arm64.whl")
    aarch64 = pip_entries(lock, "linux-aarch64")
    assert aarch64["plat"].url.endswith("-manylinux_2_28_aarch64.whl")

    # conda keeps numpy and gets pip (conda-lock adds it for a pip section).
    conda = {p.name: p for p in lock.package if p.platform == "linux-64" and p.manager == "conda"}
    assert conda["numpy"].version == "2.3.5" and "pip" in conda
    summary = {p.platform: p for p in result.platforms}
    assert (summary["linux-64"].pip_packages, summary["osx-arm64"].pip_packages) == (5, 6)


def test_the_lock_records_its_pip_indexes(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    result = lock_cpu(pip_project, pip_channel, wheel_index.url)
    custom = parse(result.path).metadata.custom_metadata
    assert custom["setup-tool.pip-indexes"] == wheel_index.url
    assert custom["setup-tool.pip-indexes-from"] == "override"
    header = result.path.read_text().split("\nversion:")[0]
    assert f"--pip-index-url {wheel_index.url}" in header
    # Checked (and relocked) from the recorded index without the flag.
    assert check_lock(pip_project, Variant.cpu, environ={}).up_to_date


def test_pip_repositories_in_the_spec(
    project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    add_pip(project, "beta<3")
    base = project / "envs" / "base.yml"
    base.write_text(
        base.read_text() + f"pip-repositories:\n  - {wheel_index.url}\nallow-pypi-requests: false\n"
    )
    result = lock_variant(project, Variant.mps, channels=[pip_channel], environ={})
    lock = parse(result.path)
    assert pip_entries(lock, "osx-arm64")["beta"].version == "2.1"
    assert lock.metadata.custom_metadata["setup-tool.pip-indexes-from"] == "spec"
    assert check_lock(project, Variant.mps, environ={}).up_to_date


# --- conda-lock reads and renders it ------------------------------------------------------------


def test_conda_lock_validates_and_renders_it(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex, tmp_path: Path
) -> None:
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1

    path = lock_cpu(pip_project, pip_channel, wheel_index.url).path
    LockfileV1.model_validate(yaml.safe_load(path.read_text()))
    for kind in ("explicit", "env"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "conda_lock",
                "render",
                "--kind",
                kind,
                "-p",
                "linux-64",
                str(path),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    explicit = (tmp_path / "conda-linux-64.lock").read_text()
    plat = wheel_index.file("plat-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    assert f"# pip plat @ {plat.resolve().as_uri()}#sha256={sha256(plat)}" in explicit
    env = yaml.safe_load((tmp_path / "conda-linux-64.lock.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert f"plat == 1.0 --hash=sha256:{sha256(plat)}" in pip_section
    assert len(pip_section) == 5


# --- Deterministic, and covered by --check -------------------------------------------------------


def test_same_inputs_give_the_same_bytes(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex, tmp_path: Path
) -> None:
    first = lock_cpu(pip_project, pip_channel, wheel_index.url)
    again = lock_cpu(pip_project, pip_channel, wheel_index.url)
    assert again.changed is False
    other = Path(shutil.copytree(pip_project, tmp_path / "other"))
    lockfile_path(other, Variant.cpu).unlink()
    lock_cpu(other, pip_channel, wheel_index.url)
    assert lockfile_path(other, Variant.cpu).read_bytes() == first.path.read_bytes()


def test_check_covers_the_pip_section(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex, tmp_path: Path
) -> None:
    lock_cpu(pip_project, pip_channel, wheel_index.url)
    assert check_lock(pip_project, Variant.cpu, environ={}).up_to_date
    cpu = pip_project / "envs" / "cpu.yml"
    before = cpu.read_text()
    add_pip(pip_project, "beta<3", file="cpu.yml")
    edited = check_lock(pip_project, Variant.cpu, environ={})
    assert {p.state for p in edited.platforms} == {"stale"}
    assert f"--pip-index-url {wheel_index.url}" in edited.refresh
    cpu.write_text(before)

    mirror = build_index(tmp_path / "mirror", wheel_index.files)
    moved = check_lock(pip_project, Variant.cpu, environ={}, pip_indexes=[mirror.url])
    assert {p.state for p in moved.platforms} == {"channels"}  # same spec, other index
    assert moved.locked_pip_indexes == (wheel_index.url,)


def test_content_hash_includes_pip_deps_as_conda_lock_computes_it(
    pip_project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    """Without overrides, the hash is conda-lock's own for `-f base.yml -f cpu.yml`."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec

    from setup_tool.lock import condalock, load_spec
    from setup_tool.lock.pypi_names import mapping_file

    base = pip_project / "envs" / "base.yml"
    base.write_text(base.read_text().replace("  - conda-forge  #", f"  - {pip_channel}  #"))
    base.write_text(base.read_text() + f"pip-repositories:\n  - {wheel_index.url}\n")
    base.write_text(base.read_text() + "allow-pypi-requests: false\n")
    result = lock_variant(pip_project, Variant.cpu, environ={})
    spec = load_spec(pip_project, Variant.cpu)
    theirs = make_lock_spec(src_files=list(spec.files), mapping_url=str(mapping_file()))
    assert any(d.manager == "pip" for d in theirs.dependencies["linux-64"])
    with_vp = condalock.content_hashes(theirs, spec.virtual_packages)
    assert parse(result.path).metadata.content_hash == with_vp
    assert compute_content_hashes  # the function condalock.content_hashes calls


# --- Bad input -----------------------------------------------------------------------------------


def test_unreachable_index_is_one_clear_error(
    pip_project: Path, pip_channel: str, unreachable_channel_url: str
) -> None:
    index = unreachable_channel_url.replace("/conda-forge", "/simple")
    with pytest.raises(ChannelUnreachable) as info:
        lock_cpu(pip_project, pip_channel, index)
    assert str(info.value) == f"cannot reach pip index {index}: connection refused"
    assert "--pip-index-url" in (info.value.hint or "")
    assert not lockfile_path(pip_project, Variant.cpu).exists()


def test_missing_local_index_says_so(project: Path, pip_channel: str, tmp_path: Path) -> None:
    add_pip(project, "alpha")
    with pytest.raises(ChannelUnreachable, match=r"nowhere does not exist"):
        lock_cpu(project, pip_channel, (tmp_path / "nowhere").as_uri())


def test_conflict_with_a_conda_package_names_both(
    project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    add_pip(project, "delta")
    with pytest.raises(SolveError) as info:
        lock_cpu(project, pip_channel, wheel_index.url)
    message = str(info.value)
    assert message.splitlines()[0] == (
        "the pip requirements for cpu linux-64 conflict with conda's numpy 2.3.5:"
    )
    assert "delta" in message and "numpy<2" in message and "numpy==2.3.5 (from conda)" in message
    assert "+conda" not in message
    assert "pin the conda package" in (info.value.hint or "")
    assert not lockfile_path(project, Variant.cpu).exists()


def test_sdist_only_requirement_is_refused(
    project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:
    add_pip(project, "sdonly")
    with pytest.raises(SolveError) as info:
        lock_cpu(project, pip_channel, wheel_index.url)
    assert str(info.value).splitlines()[0] == (
        "sdonly has no wheel for cpu linux-64 (Python 3.12.12): only a source distribution, "
        "and setup-tool locks wheels only (nothing is built)"
    )
    assert not lockfile_path(project, Variant.cpu).exists()


def test_unknown_pip_package(project: Path, pip_channel: str, wheel_index: WheelIndex) -> None:
    add_pip(project, "nosuchpackage")
    with pytest.raises(SolveError, match=r"^pip package nosuchpackage is not in the indexes"):
        lock_cpu(project, pip_channel, wheel_index.url)


def test_a_password_in_the_index_url_is_refused(project: Path, pip_channel: str) -> None:
    add_pip(project, "alpha")
    with pytest.raises(UsageError, match="holds a password, which the lockfile would record"):
        lock_cpu(project, pip_channel, "https://me:secret@mirror.example/simple")


# --- Over HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [True, False], ids=["pep658", "whole-wheel"])
def test_served_index(
    pip_project: Path, pip_channel: str, tmp_path: Path, wheel_index: WheelIndex, metadata: bool
) -> None:
    index = build_index(tmp_path / "served", wheel_index.files, metadata=metadata)
    with serve_index(index) as url:
        result = lock_cpu(pip_project, pip_channel, url)
    linux = pip_entries(parse(result.path), "linux-64")
    assert linux["alpha"].url == f"{url}/files/alpha-1.0-py3-none-any.whl"
    assert linux["alpha"].dependencies == {"beta": ">=2", "eps": "*", "numpy": ">=1.20"}
    assert linux["alpha"].hash.sha256 == sha256(index.file("alpha-1.0-py3-none-any.whl"))


# --- The command line ---------------------------------------------------------------------------


def test_lock_command_with_a_pip_section(
    cli, pip_project: Path, pip_channel: str, wheel_index: WheelIndex
) -> None:  # type: ignore[no-untyped-def]
    env = {"SETUP_TOOL_PROJECT": str(pip_project)}
    args = ("lock", "--variant", "cpu", "--channel", pip_channel)
    result = cli.ok(*args, "--pip-index-url", wheel_index.url, env=env)
    assert (
        f"==> locking the pip section of cpu for linux-64, linux-aarch64, osx-arm64 from "
        f"{wheel_index.url} (from --pip-index-url)"
    ) in result.stderr
    assert "    cpu osx-arm64: 6 wheels (" in result.stderr
    assert re.search(r"^cpu +linux-64 +10 \+ 5 pip +2\.13\.0 cpu_", result.stdout, re.M)

    check = cli.ok(*args, "--check", env=env)  # the index is recorded: no flag needed
    assert "✓ cpu: envs/locks/cpu.conda-lock.yml is up to date" in check.stdout
    env_var = {**env, "SETUP_TOOL_PIP_INDEX_URL": wheel_index.url + "/"}
    assert "is up to date" in cli.ok(*args, "--check", env=env_var).stdout


def test_torch_from_choices_are_the_sources() -> None:
    from setup_tool.cli.options import TorchFrom
    from setup_tool.lock.torch_source import TORCH_SOURCES

    assert tuple(t.value for t in TorchFrom) == TORCH_SOURCES
