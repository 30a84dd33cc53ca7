"""Install refuses bad inputs and keeps the previous environment: hashes, 404s, bad lockfiles."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from channel import LocalChannel, serve_channel
from conftest import Cli
from install_support import installed_numpy, leftovers, make_project, newer_numpy


@contextmanager
def served(channel: LocalChannel, transport: str) -> Iterator[str]:
    if transport == "file":
        yield channel.url
    else:
        with serve_channel(channel.root) as url:
            yield url


@pytest.mark.parametrize("transport", ["file", "http"])
def test_tampered_package_is_refused_and_the_old_environment_kept(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel, transport: str
) -> None:
    channel = local_channel.copy_to(tmp_path / "channel")
    with served(channel, transport) as url:
        project = make_project(tmp_path, url)
        cli.ok("install", env=project.env)
        channel = channel.add(newer_numpy(channel))
        project.relock()
        # The channel's file changes after locking: a valid archive, but not the locked one.
        new = channel.find("numpy", "linux-64", "py312")[-1]
        old = channel.find("numpy", "linux-64", "py312")[0]
        assert new.version == "2.4.0" and old.version == "2.3.5"
        shutil.copyfile(old.path, new.path)

        result = cli("install", env=project.env)
        assert result.exit_code == 7, result.output
        assert "numpy 2.4.0" in result.stderr
        assert "nothing was installed" in result.stderr
        assert "`setup-tool lock --variant cpu`" in result.stderr  # the project's own lock
        assert installed_numpy(project.prefix) == "2.3.5"
        assert leftovers(project.prefix) == []
        archives = project.cache / "archives"
        assert not (archives / new.sha256).exists() or not any((archives / new.sha256).iterdir())


def test_tampered_cache_entry_is_fetched_again(
    cli: Cli, tmp_path: Path, http_channel_url: str
) -> None:
    """Downloads are cached (file:// packages are hashed in place instead): a cached archive
    changed by hand fails its stamp, is hashed, and is downloaded again."""
    project = make_project(tmp_path, http_channel_url)
    cli.ok("install", env=project.env)
    cached = next((project.cache / "archives").glob("*/numpy-*"))
    cached.write_bytes(b"not the archive the lock names")

    other = tmp_path / "second-env"
    result = cli.ok("install", "--prefix", str(other), env=project.env)
    assert "1 downloaded, 8 from cache" in result.stderr
    assert installed_numpy(other) == "2.3.5"
    assert cached.read_bytes() != b"not the archive the lock names"


@pytest.mark.parametrize("transport", ["file", "http"])
def test_package_missing_from_the_channel(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel, transport: str
) -> None:
    channel = local_channel.copy_to(tmp_path / "channel")
    with served(channel, transport) as url:
        project = make_project(tmp_path, url)
        channel.find("numpy", "linux-64", "py312")[0].path.unlink()
        result = cli("install", env=project.env)
        assert result.exit_code == 1
        assert "numpy 2.3.5" in result.stderr
        assert ("HTTP 404" if transport == "http" else "does not exist") in result.stderr
        assert "relock" in result.stderr  # the hint
        assert not project.prefix.exists()


def test_unreachable_channel(cli: Cli, tmp_path: Path, local_channel: LocalChannel) -> None:
    with serve_channel(local_channel.root) as url:
        project = make_project(tmp_path, url)
    # The server is gone now: its port refuses connections.
    result = cli("install", env=project.env)
    assert result.exit_code == 1
    assert "cannot reach 127.0.0.1" in result.stderr
    assert "hint:" in result.stderr
    assert not project.prefix.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(lambda text: text[: len(text) // 2], "not a valid", id="truncated"),
        pytest.param(lambda text: "{{{ not yaml", "is not valid YAML at line ", id="garbage"),
        pytest.param(lambda text: "", "is empty or has no `version`", id="empty"),
        pytest.param(lambda text: "- a\n- list\n", "is empty or has no `version`", id="a-list"),
        pytest.param(
            lambda text: text.replace("version: 1", "version: 9"), "not a valid", id="version"
        ),
    ],
)
def test_corrupt_lockfile(
    cli: Cli, tmp_path: Path, channel_url: str, content: Callable[[str], str], needle: str
) -> None:
    project = make_project(tmp_path, channel_url)
    cli.ok("install", env=project.env)
    project.lockfile.write_text(content(project.lockfile.read_text()))
    result = cli("install", env=project.env)
    assert result.exit_code == 1, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert "hint:" in result.stderr
    assert installed_numpy(project.prefix) == "2.3.5"


def test_missing_lockfile_says_how_to_make_one(cli: Cli, tmp_path: Path, channel_url: str) -> None:
    project = make_project(tmp_path, channel_url, locked=False)
    result = cli("install", env=project.env)
    assert result.exit_code == 1
    assert "not found" in result.stderr
    assert "setup-tool lock --variant cpu" in result.stderr


def test_lockfile_without_this_platform(cli: Cli, tmp_path: Path, channel_url: str) -> None:
    from setup_tool.lock import lock_variants
    from setup_tool.variants import Variant

    project = make_project(tmp_path, channel_url, locked=False)
    lock_variants(
        project.root, [Variant.cpu], platforms=["osx-arm64"], channels=[channel_url], environ={}
    )
    result = cli("install", env=project.env)
    assert result.exit_code == 5
    assert "no packages for this machine's platform linux-64" in result.stderr
    assert "(it has: osx-arm64)" in result.stderr
    assert not project.cache.exists()


def test_a_full_disk_while_linking_leaves_the_old_environment(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from setup_tool.install import link as linking

    channel = local_channel.copy_to(tmp_path / "channel")
    project = make_project(tmp_path, channel.url)
    cli.ok("install", env=project.env)
    channel.add(newer_numpy(channel))
    project.relock()

    def full_disk(fetched, *, staging: Path, **_: object) -> None:  # type: ignore[no-untyped-def]
        (staging / "conda-meta").mkdir(parents=True)  # a partly written environment
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(linking, "link", full_disk)
    result = cli("install", env=project.env)
    assert result.exit_code == 1
    assert "no space left on the device" in result.stderr
    assert "previous environment is unchanged" in result.stderr
    assert installed_numpy(project.prefix) == "2.3.5"
    assert leftovers(project.prefix) == []
