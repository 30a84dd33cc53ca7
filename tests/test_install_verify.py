"""What is linked is what the lock names, and failures on the way say what happened: an
archive the lock vouches for that cannot be unpacked, an in-place edit of an installed file
(the extracted-package cache it is hard-linked from), a download cut off mid-body. The
environment already at the prefix stays as it was and keeps working. (Tampered packages and
cache entries, 404s and unreachable channels: test_install_integrity.py.)"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from channel import LocalChannel, index_channel
from conftest import Cli
from install_helpers import (
    assert_env_matches,
    assert_no_leftovers,
    env_torch,
    lock_project,
    pytorch_archive,
    serve_slowly,
    snapshot,
)

from setup_tool.errors import ExitCode
from setup_tool.variants import Variant


@pytest.fixture(autouse=True)
def _cuda_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.9")  # the cuda locks below fit this machine


@pytest.fixture
def old_env(cli: Cli, locked_project: Path, tmp_path: Path) -> Path:
    """A working cpu environment, installed with a cache of its own (so that nothing the next
    install needs is cached already)."""
    prefix = tmp_path / "env"
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    cli.ok(
        "install", "--lockfile", str(lockfile), "--prefix", str(prefix),
        env={"SETUP_TOOL_CACHE": str(tmp_path / "old-cache")},
    )  # fmt: skip
    assert_env_matches(prefix, lockfile)
    return prefix


def _cuda_lock(tmp_path: Path, url: str) -> Path:
    return lock_project(tmp_path / "project", url, Variant.cuda)


def _unchanged(prefix: Path, before: dict[str, object]) -> None:
    assert snapshot(prefix) == before
    assert env_torch(prefix)["cuda"] is None  # still the cpu environment, and it runs
    assert_no_leftovers(prefix)


def test_archive_that_cannot_be_unpacked(
    cli: Cli, local_channel: LocalChannel, old_env: Path, tmp_path: Path
) -> None:
    """The channel itself indexed a broken file, so the lock's hash matches it: the hash check
    passes and py-rattler's installer fails. That is an error with a hint, not a traceback."""
    channel = local_channel.copy_to(tmp_path / "channel")
    archive = pytorch_archive(channel, "cuda129")
    with zipfile.ZipFile(archive) as original:
        members = [(info, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(archive, "w") as broken:  # metadata intact, payload not zstd at all
        for info, data in members:
            broken.writestr(info, b"garbage" if info.filename.startswith("pkg-") else data)
    index_channel(channel.root)
    lockfile = _cuda_lock(tmp_path, channel.url)
    before = snapshot(old_env)

    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(old_env))
    assert result.exit_code == ExitCode.ERROR, result.output
    assert re.search(
        r"^error: linking the environment failed: failed to fetch pytorch-2\.13\.0-cuda129\S+: "
        r".*; the previous environment is unchanged$",
        result.stderr,
        re.M,
    ), result.stderr
    assert "hint: run again; if it persists, clear the package cache" in result.stderr
    _unchanged(old_env, before)


def test_in_place_edit_in_one_environment_does_not_reach_the_next(
    cli: Cli, locked_project: Path, tmp_path: Path
) -> None:
    """Environments hard-link their files from the extracted-package cache: an edit made in
    place in one environment must not be linked into a later one as if it were verified."""
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    first, second = tmp_path / "first", tmp_path / "second"
    cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(first))
    module = Path("lib/python3.12/site-packages/torch/__init__.py")
    pristine = (first / module).read_text()
    with (first / module).open("a") as edit:  # in place: same inode as the cache's copy
        edit.write("print('edited by hand')\n")

    cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(second))
    assert (second / module).read_text() == pristine
    assert (first / module).read_text() == pristine + "print('edited by hand')\n"  # theirs
    assert_env_matches(second, lockfile)


def test_download_broken_off_midway(
    cli: Cli, local_channel: LocalChannel, old_env: Path, tmp_path: Path
) -> None:
    channel = local_channel.copy_to(tmp_path / "channel")
    with serve_slowly(channel.root, delay=0, chunk=100) as server:
        lockfile = _cuda_lock(tmp_path, server.url)
        server.break_after = 300
        before = snapshot(old_env)
        result = cli("install", "--lockfile", str(lockfile), "--prefix", str(old_env))
    assert result.exit_code == ExitCode.ERROR, result.output
    host = server.url.removeprefix("http://")
    # Not "tampered" (exit 7, "relock only if you trust the new file"): the link broke.
    assert re.search(
        rf"error: the download of [\w-]+ from {re.escape(host)} broke off after 300 of \d+ bytes",
        result.stderr,
    ), result.stderr
    assert "hint: try again: finished downloads are kept in the cache" in result.stderr
    _unchanged(old_env, before)
    assert not list((tmp_path / "cache").rglob("*.part"))
