"""Stamps let a repeat install skip re-hashing what has not changed (setup_tool/install/stamps.py):
a cached or file:// archive, and py-rattler's extracted packages. What a stamp cannot see is
what --verify-cache is for; a file:// package rewritten while it is linked fails the install."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from channel import LocalChannel
from conftest import Cli
from install_helpers import assert_env_matches, snapshot
from install_support import make_project, newer_numpy

from setup_tool.errors import ExitCode
from setup_tool.install import download, link

TORCH = Path("lib/python3.12/site-packages/torch/__init__.py")


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The archives hashed by installs in this process, in order (a spy on the hashing)."""
    seen: list[str] = []
    real_copy, real_digests = download._copy, download._digests_of

    def copy(source: Any, out: Any, *args: Any) -> int:
        seen.append(getattr(source, "name", "?"))
        return real_copy(source, out, *args)

    def digests_of(path: Path, package: Any) -> Any:
        seen.append(str(path))
        return real_digests(path, package)

    monkeypatch.setattr(download, "_copy", copy)
    monkeypatch.setattr(download, "_digests_of", digests_of)
    return seen


@pytest.fixture
def validation_modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """py-rattler's cache validation mode of each link in this process ("full" / "fast")."""
    import rattler

    modes: list[str] = []
    real = rattler.PackageCache.new_layered

    def new_layered(paths: Any, validation_mode: Any = None, **kwargs: Any) -> Any:
        modes.append("full" if validation_mode.is_full else "fast")
        return real(paths, validation_mode=validation_mode, **kwargs)

    monkeypatch.setattr(rattler.PackageCache, "new_layered", new_layered)
    return modes


def _install(cli: Cli, lockfile: Path, prefix: Path, *more: str) -> str:
    return cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(prefix), *more).stderr


def test_a_repeat_install_hashes_nothing_and_validates_fast(
    cli: Cli, cpu_lock: Path, tmp_path: Path, hashed: list[str], validation_modes: list[str]
) -> None:
    first = _install(cli, cpu_lock, tmp_path / "one")
    assert "9 downloaded, 0 from cache" in first
    assert len(hashed) == 9 and validation_modes == ["fast"]  # a new cache: nothing to validate
    hashed.clear()

    second = _install(cli, cpu_lock, tmp_path / "two")
    assert "0 downloaded, 9 from cache" in second
    assert hashed == [] and validation_modes == ["fast", "fast"]
    assert_env_matches(tmp_path / "two", cpu_lock)

    _install(cli, cpu_lock, tmp_path / "three", "--verify-cache")
    assert len(hashed) == 9 and validation_modes[-1] == "full"


def test_an_in_place_edit_makes_the_next_link_validate_in_full(
    cli: Cli, cpu_lock: Path, tmp_path: Path, validation_modes: list[str]
) -> None:
    _install(cli, cpu_lock, tmp_path / "one")
    with (tmp_path / "one" / TORCH).open("a") as edit:  # same inode as the cache's copy
        edit.write("print('edited by hand')\n")
    _install(cli, cpu_lock, tmp_path / "two")
    assert validation_modes[-1] == "full"
    assert_env_matches(tmp_path / "two", cpu_lock)  # the edit did not travel
    _install(cli, cpu_lock, tmp_path / "three")
    assert validation_modes[-1] == "fast"  # re-extracted and stamped again


def test_an_edit_that_restores_size_and_mtime_needs_verify_cache(
    cli: Cli, cpu_lock: Path, tmp_path: Path
) -> None:
    """The documented limit of a stamp (docs/install.md, "The package cache"): a same-size
    edit that puts the nanosecond mtime back is trusted until --verify-cache."""
    _install(cli, cpu_lock, tmp_path / "one")
    edited = tmp_path / "one" / TORCH
    pristine = edited.read_text()
    before = edited.stat()
    with edited.open("r+") as handle:  # in place, same length
        handle.write("#" * 8)
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert edited.read_text() != pristine

    _install(cli, cpu_lock, tmp_path / "two")
    assert (tmp_path / "two" / TORCH).read_text() != pristine  # not seen: the limit
    _install(cli, cpu_lock, tmp_path / "three", "--verify-cache")
    assert (tmp_path / "three" / TORCH).read_text() == pristine
    assert_env_matches(tmp_path / "three", cpu_lock)


def test_a_file_channel_package_rewritten_while_linking_fails_the_install(
    cli: Cli,
    tmp_path: Path,
    local_channel: LocalChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """file:// packages are hashed where they lie, then read by py-rattler: one replaced in
    between (by a same-content copy, even) is not the file that was hashed."""
    channel = local_channel.copy_to(tmp_path / "channel")
    project = make_project(tmp_path, channel.url)
    cli.ok("install", env=project.env)
    before = snapshot(project.prefix)
    channel = channel.add(newer_numpy(channel))  # an upgrade to install
    project.relock()
    newer = channel.find("numpy", "linux-64", "py312")[-1].path
    assert "2.4.0" in newer.name
    real_link: Callable[..., None] = link.link

    def rewriting_link(*args: Any, **kwargs: Any) -> None:
        real_link(*args, **kwargs)
        shutil.copyfile(newer, newer.with_suffix(".tmp"))
        os.replace(newer.with_suffix(".tmp"), newer)  # same bytes, another file

    monkeypatch.setattr(link, "link", rewriting_link)
    result = cli("install", env=project.env)
    assert result.exit_code == ExitCode.HASH_MISMATCH, result.output
    assert f"error: {newer} changed while it was being installed" in result.stderr
    assert "the previous environment is unchanged" in result.stderr
    assert snapshot(project.prefix) == before
