"""Every package is verified before it is linked, over every transport: a tampered package,
a tampered cache entry, a package gone from the channel, a channel that does not answer, an
archive the lock vouches for that cannot be unpacked. The environment already at the prefix
stays as it was and keeps working."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from channel import LocalChannel, index_channel, serve_channel
from install_helpers import (
    assert_env_matches,
    assert_no_leftovers,
    env_torch,
    lock_project,
    pytorch_archive,
    serve_slowly,
    snapshot,
    tamper,
)

from setup_tool.errors import ExitCode
from setup_tool.variants import Variant


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETUP_TOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.9")  # the cuda locks below fit this machine


@dataclass(frozen=True)
class Served:
    channel: LocalChannel  # a copy of the test channel, ours to break
    url: str  # file:// or http://127.0.0.1


@pytest.fixture(params=["file", "http"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, local_channel: LocalChannel
) -> Iterator[Served]:
    channel = local_channel.copy_to(tmp_path / "channel")
    if request.param == "file":
        yield Served(channel, channel.url)
    else:
        with serve_channel(channel.root) as url:
            yield Served(channel, url)


@pytest.fixture
def old_env(cli, locked_project: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
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


def test_tampered_package_is_refused(cli, served: Served, old_env: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lockfile = _cuda_lock(tmp_path, served.url)
    archive = pytorch_archive(served.channel, "cuda129")
    locked_sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    tamper(archive)  # after locking: the channel now serves other bytes under the same name
    before = snapshot(old_env)

    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(old_env))
    assert result.exit_code == ExitCode.HASH_MISMATCH == 7, result.output
    assert re.search(
        rf"error: pytorch 2\.13\.0 \({re.escape(archive.name)}\) has sha256 [0-9a-f]{{16}}… but "
        rf"the lock says {locked_sha[:16]}…; the download was deleted and nothing was installed",
        result.stderr,
    ), result.stderr
    assert f"hint: the file at {served.url}/linux-64/{archive.name} changed" in result.stderr
    _unchanged(old_env, before)
    cache = tmp_path / "cache"
    assert not list((cache / "archives" / locked_sha).iterdir())  # no bad entry kept
    assert not [p for p in cache.rglob("*") if p.name.endswith(".part")]
    assert not (cache / "rattler").exists()  # nothing was linked at all


def test_tampered_cache_entry_is_fetched_again(cli, locked_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(tmp_path / "first"))
    (cached,) = (tmp_path / "cache" / "archives").glob("*/pytorch-2.13.0-*")
    good = cached.read_bytes()
    tamper(cached)  # bit rot, or someone editing the cache

    result = cli.ok(
        "install", "--lockfile", str(lockfile), "--prefix", str(tmp_path / "second"), "--json"
    )
    report = json.loads(result.stdout)
    assert (report["downloaded"], report["reused_from_cache"]) == (1, 8)
    assert cached.read_bytes() == good
    assert cached.parent.name == hashlib.sha256(good).hexdigest()
    assert_env_matches(tmp_path / "second", lockfile)


def test_package_missing_from_the_channel(
    cli, served: Served, old_env: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    lockfile = _cuda_lock(tmp_path, served.url)
    archive = pytorch_archive(served.channel, "cuda129")
    archive.unlink()  # yanked after locking
    before = snapshot(old_env)

    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(old_env))
    assert result.exit_code == ExitCode.ERROR, result.output
    url = f"{served.url}/linux-64/{archive.name}"
    expected = (
        f"error: pytorch 2.13.0: {url} answered HTTP 404"
        if served.url.startswith("http")
        else f"error: pytorch 2.13.0 is not in the channel: {url} does not exist"
    )
    assert expected in result.stderr
    assert "hint: the channel no longer has this file: relock with `setup-tool lock`" in (
        result.stderr
    )
    _unchanged(old_env, before)


def test_unreachable_channel(
    cli, local_channel: LocalChannel, old_env: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    channel = local_channel.copy_to(tmp_path / "channel")
    with serve_channel(channel.root) as url:
        lockfile = _cuda_lock(tmp_path, url)
    # The server is gone: its port refuses connections.
    before = snapshot(old_env)
    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(old_env))
    assert result.exit_code == ExitCode.ERROR, result.output
    host = url.removeprefix("http://")
    assert re.search(rf"error: cannot reach {re.escape(host)} for [\w-]+: .*refused", result.stderr)
    assert "hint: check the network or proxy settings (HTTPS_PROXY)" in result.stderr
    _unchanged(old_env, before)


def test_archive_that_cannot_be_unpacked(
    cli, local_channel: LocalChannel, old_env: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
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


def test_in_place_edit_in_one_environment_does_not_reach_the_next(  # type: ignore[no-untyped-def]
    cli, locked_project: Path, tmp_path: Path
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


def test_download_broken_off_midway(  # type: ignore[no-untyped-def]
    cli, local_channel: LocalChannel, old_env: Path, tmp_path: Path
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
