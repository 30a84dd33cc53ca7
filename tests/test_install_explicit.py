"""Explicit lockfiles (``@EXPLICIT``): rendered by conda-lock itself from a real lock of the local
channel, installed with every package's hash verified; tampered, foreign and unhashed ones
refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from channel import LocalChannel
from conftest import Cli
from install_helpers import assert_env_matches, installed, locked_builds, snapshot
from typer.testing import Result

from setup_tool.errors import ExitCode, LockfileInvalid, LockfileMismatch
from setup_tool.install.explicit import read_explicit
from setup_tool.install.lockread import read_locked_platform


def render_explicit(lockfile: Path, platform: str = "linux-64") -> str:
    """What `conda-lock render --kind explicit -p <platform>` writes for ``lockfile``."""
    from conda_lock.conda_lock import render_lockfile_for_platform
    from conda_lock.lockfile import parse_conda_lock_file

    lines = render_lockfile_for_platform(
        lockfile=parse_conda_lock_file(lockfile),
        include_dev_dependencies=False,
        extras=None,
        kind="explicit",
        platform=platform,
    )
    return "\n".join(lines) + "\n"


@pytest.fixture
def cpu_explicit(locked_project: Path, tmp_path: Path) -> Path:
    path = tmp_path / "conda-linux-64.lock"
    path.write_text(render_explicit(locked_project / "envs" / "locks" / "cpu.conda-lock.yml"))
    return path


def _install(cli: Cli, lockfile: Path, prefix: Path, *more: str) -> Result:
    return cli("install", "--lockfile", str(lockfile), "--prefix", str(prefix), *more)


def test_conda_lock_s_explicit_render_installs_with_md5_verified(
    cli: Cli, cpu_explicit: Path, locked_project: Path, tmp_path: Path
) -> None:
    text = cpu_explicit.read_text()
    assert "# platform: linux-64" in text and "@EXPLICIT" in text
    prefix = tmp_path / "env"
    result = _install(cli, cpu_explicit, prefix)
    assert result.exit_code == 0, result.output
    assert "verified by md5 only" in result.stderr  # said, not hidden
    assert_env_matches(prefix, cpu_explicit)
    again = _install(cli, cpu_explicit, prefix)
    assert again.exit_code == 0 and "is up to date" in again.stderr


def test_sha256_fragments_are_verified_by_sha256(
    cli: Cli, locked_project: Path, tmp_path: Path
) -> None:
    """The ``url#sha256:<hex>`` form (``conda list --explicit --sha256``)."""
    locked = read_locked_platform(
        locked_project / "envs" / "locks" / "cpu.conda-lock.yml", "linux-64"
    )
    lines = ["# platform: linux-64", "@EXPLICIT"]
    lines += [f"{p.url}#sha256:{p.sha256}" for p in locked.packages]
    path = tmp_path / "sha.txt"
    path.write_text("\n".join(lines) + "\n")
    explicit = read_locked_platform(path, "linux-64")
    assert {p.hash_kind for p in explicit.packages} == {"sha256"}
    assert not explicit.warnings
    result = _install(cli, path, tmp_path / "env", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "installed"


@pytest.mark.parametrize("where", ["fragment", "package"])
def test_tampered_explicit_lockfile_or_package_exits_7(
    cli: Cli, cpu_explicit: Path, local_channel: LocalChannel, tmp_path: Path, where: str
) -> None:
    text = cpu_explicit.read_text()
    numpy_line = next(line for line in text.splitlines() if "/numpy-" in line)
    url = numpy_line.split("#")[0]
    if where == "fragment":
        text = text.replace(numpy_line, f"{url}#{'0' * 32}")
    else:  # the lock is intact; the channel's numpy archive changed after it was written
        channel = local_channel.copy_to(tmp_path / "channel")
        text = text.replace(local_channel.url, channel.url)
        filename = url.rsplit("/", 1)[1]
        (archive,) = [p.path for p in channel.find("numpy", "linux-64") if p.filename == filename]
        archive.write_bytes(archive.read_bytes() + b"tampered")
    cpu_explicit.write_text(text)
    prefix = tmp_path / "env"
    result = _install(cli, cpu_explicit, prefix)
    assert result.exit_code == ExitCode.HASH_MISMATCH == 7, result.output
    assert "numpy" in result.stderr and "md5" in result.stderr
    # Not the project's lock: `setup-tool lock` would not re-create this file.
    assert "only if you trust the new file" in result.stderr
    assert "setup-tool lock" not in result.stderr
    assert not prefix.exists()


def test_a_file_for_another_platform_is_refused_with_the_fix(
    cli: Cli, locked_project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "conda-osx-arm64.lock"
    path.write_text(
        render_explicit(locked_project / "envs" / "locks" / "cpu.conda-lock.yml", "osx-arm64")
    )
    before = snapshot(tmp_path)
    result = _install(cli, path, tmp_path / "env", "--json")
    assert result.exit_code == ExitCode.LOCK_MISMATCH
    error = json.loads(result.stdout)["error"]
    assert "explicit lockfile for osx-arm64" in error["message"]
    assert "-p linux-64" in error["hint"]
    assert error["reasons"][0]["kind"] == "platform"
    assert snapshot(tmp_path) == before


def test_a_file_without_hashes_needs_allow_unverified(
    cli: Cli, cpu_explicit: Path, locked_project: Path, tmp_path: Path
) -> None:
    lines = cpu_explicit.read_text().splitlines()
    text = "\n".join(line.split("#")[0] if line.startswith("file:") else line for line in lines)
    cpu_explicit.write_text(text + "\n")
    prefix = tmp_path / "env"
    refused = _install(cli, cpu_explicit, prefix)
    assert refused.exit_code == ExitCode.ERROR
    assert "have no hash" in refused.stderr and "--allow-unverified" in refused.stderr
    assert not prefix.exists()
    allowed = _install(cli, cpu_explicit, prefix, "--allow-unverified")
    assert allowed.exit_code == 0, allowed.output
    assert "installed unverified" in allowed.stderr
    assert installed(prefix) == locked_builds(locked_project / "envs/locks/cpu.conda-lock.yml")


def test_the_machine_check_reads_build_strings(tmp_path: Path) -> None:
    """No dependencies in the file: a CUDA build is known by its build string."""
    from setup_tool.install.compat import MachineFacts, assess

    path = tmp_path / "cuda.lock"
    path.write_text(
        "# platform: linux-64\n@EXPLICIT\n"
        "https://conda.anaconda.org/conda-forge/noarch/cuda-version-12.9-h4f385c5_3.conda"
        f"#{'a' * 32}\n"
        "https://conda.anaconda.org/conda-forge/linux-64/"
        f"pytorch-2.10.0-cuda129_mkl_py312_h2ff76c1_300.conda#{'b' * 32}\n"
    )
    locked = read_locked_platform(path, "linux-64")
    assert not locked.has_dependencies
    no_gpu = assess(locked, MachineFacts(None, glibc="2.36"))
    (problem,) = no_gpu.mismatches
    assert "pytorch is a CUDA build for CUDA 12.9 (cuda-version 12.9)" in problem.reason
    fits = assess(locked, MachineFacts("12.4", glibc="2.36"))
    assert fits.fits and any("minor-version" in w for w in fits.warnings)
    assert any("records no dependencies" in w for w in fits.warnings)


LINUX_A = f"https://x/linux-64/a-1-0.conda#{'a' * 32}\n"
OSX_B = f"https://x/osx-arm64/b-1-0.conda#{'a' * 32}\n"
PIP_SIX = f"# pip six @ https://x/six.whl#sha256={'c' * 64}\n"


@pytest.mark.parametrize(
    ("text", "error", "needle"),
    [
        pytest.param(LINUX_A + "@EXPLICIT\n", LockfileInvalid, "before the @EXPLICIT", id="url-first"),  # noqa: E501
        pytest.param("@EXPLICIT\nnot a url\n", LockfileInvalid, "not a conda package URL", id="junk"),  # noqa: E501
        pytest.param("@EXPLICIT\nhttps://x/linux-64/a-1-0.conda#xyz\n", LockfileInvalid, "neither an md5", id="bad-hash"),  # noqa: E501
        pytest.param("# platform: linux-64\n@EXPLICIT\n", LockfileInvalid, "lists no packages", id="empty"),  # noqa: E501
        pytest.param("@EXPLICIT\n" + LINUX_A + OSX_B, LockfileInvalid, "several platforms", id="mixed"),  # noqa: E501
        pytest.param("@EXPLICIT\n" + OSX_B, LockfileMismatch, "explicit lockfile for osx-arm64", id="from-urls"),  # noqa: E501
        pytest.param("@EXPLICIT\n" + LINUX_A + PIP_SIX, LockfileInvalid, "pip packages (six)", id="pip"),  # noqa: E501
    ],
)  # fmt: skip
def test_bad_explicit_files_say_what_is_wrong(
    tmp_path: Path, text: str, error: type[Exception], needle: str
) -> None:
    path = tmp_path / "bad.lock"
    path.write_text(text)
    with pytest.raises(error) as caught:
        read_explicit(path, path.read_bytes(), "linux-64")
    assert needle in str(caught.value)
    assert caught.value.hint  # type: ignore[attr-defined]


def test_pip_comments_are_refused_for_what_they_are(tmp_path: Path) -> None:
    """conda-lock renders pip packages as ``# pip name @ url#sha256=...`` comments: they carry
    a hash, so the refusal must not say they lack one; it says conda tools skip them."""
    path = tmp_path / "conda-linux-64.lock"
    path.write_text("@EXPLICIT\n" + LINUX_A + PIP_SIX)
    with pytest.raises(LockfileInvalid) as caught:
        read_explicit(path, path.read_bytes(), "linux-64")
    assert "without hashes" not in caught.value.message
    assert "comments" in caught.value.message and "--lockfile" in (caught.value.hint or "")


def test_explicit_files_have_no_categories(cpu_explicit: Path) -> None:
    from setup_tool.errors import UsageError

    with pytest.raises(UsageError, match="no categories"):
        read_locked_platform(cpu_explicit, "linux-64", ("main", "dev"))


def test_warnings_come_before_the_download(cpu_explicit: Path, tmp_path: Path) -> None:
    """What cannot be checked (glibc of an explicit file) and what is weaker (md5) is said
    before anything is fetched, as events: a big install must not bury it behind its output."""
    from setup_tool.detect import detect
    from setup_tool.install import install
    from setup_tool.install.progress import Progress
    from setup_tool.install.request import install_request

    events: list[str] = []

    class Recorder(Progress):
        def step(self, message: str) -> None:
            events.append(f"step: {message}")

        def warning(self, message: str) -> None:
            events.append(f"warning: {message}")

    request = install_request(detect(), lockfile=cpu_explicit, prefix=tmp_path / "env")
    result = install(request, Recorder())
    warnings = [e.removeprefix("warning: ") for e in events if e.startswith("warning: ")]
    assert warnings == list(result.warnings) and len(warnings) == 2
    first_step = next(i for i, e in enumerate(events) if e.startswith("step: fetching"))
    assert all(events.index(f"warning: {w}") < first_step for w in warnings)


def test_the_cli_prints_each_warning_once_before_fetching(
    cli, cpu_explicit: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = _install(cli, cpu_explicit, tmp_path / "env")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    warnings = [i for i, line in enumerate(lines) if line.startswith("warning: ")]
    fetching = next(i for i, line in enumerate(lines) if "fetching and verifying" in line)
    assert len(warnings) == 2 and max(warnings) < fetching
    assert len({lines[i] for i in warnings}) == 2
