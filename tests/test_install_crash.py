"""Crash safety and concurrency: SIGKILL at every step, a kill mid-download, two installs at once.

Each kill leaves the previous environment in place and working; the next run recovers by
itself and leaves nothing behind. Kills at named steps use the installer's fault-injection
points (``SETUP_TOOL_TEST_CRASH_AT``); one more is a real kill while a download is in flight.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from channel import LocalChannel, serve_channel
from conftest import Cli
from install_helpers import serve_slowly, wait_for
from install_support import (
    Project,
    installed_numpy,
    leftovers,
    make_project,
    newer_numpy,
    run_install_process,
)

from setup_tool.install import prefix as prefixes


@pytest.fixture
def upgrading(cli: Cli, tmp_path: Path, local_channel: LocalChannel) -> Project:
    """Installed at numpy 2.3.5, then relocked for 2.4.0 (the next install upgrades)."""
    channel = local_channel.copy_to(tmp_path / "channel")
    project = make_project(tmp_path, channel.url)
    cli.ok("install", env=project.env)
    channel.add(newer_numpy(channel))
    project.relock()
    return project


@pytest.mark.parametrize(
    ("point", "numpy_after_kill"),
    [
        ("after-fetch", "2.3.5"),
        ("mid-link", "2.3.5"),
        ("after-link", "2.3.5"),
        ("before-swap", "2.3.5"),
        ("after-swap", "2.4.0"),
    ],
)
def test_sigkill_at_each_step_keeps_a_working_environment(
    upgrading: Project, point: str, numpy_after_kill: str
) -> None:
    killed = run_install_process(upgrading, extra_env={"SETUP_TOOL_TEST_CRASH_AT": point})
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    # The prefix is always one complete environment: the old one, or (killed after the swap)
    # the new one, never a mix; either way it runs.
    assert installed_numpy(upgrading.prefix) == numpy_after_kill
    assert prefixes.read_state(upgrading.prefix) is not None

    again = run_install_process(upgrading)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert installed_numpy(upgrading.prefix) == "2.4.0"
    assert leftovers(upgrading.prefix) == []


def test_sigkill_during_a_first_install_leaves_no_environment(
    tmp_path: Path, channel_url: str
) -> None:
    project = make_project(tmp_path, channel_url)
    killed = run_install_process(project, extra_env={"SETUP_TOOL_TEST_CRASH_AT": "before-swap"})
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not project.prefix.exists()  # a half-made environment is never at the prefix
    assert leftovers(project.prefix)  # the complete staging dir it was about to swap in

    again = run_install_process(project)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert "left by an interrupted install" in stderr
    assert installed_numpy(project.prefix) == "2.3.5"
    assert leftovers(project.prefix) == []


@contextmanager
def upgrade_in_mid_download(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel
) -> Iterator[tuple[Project, LocalChannel, subprocess.Popen[str]]]:
    """Installed at numpy 2.3.5 from a slow server, relocked for 2.4.0, and an install
    process that is in the middle of downloading it: yields (project, channel, process)."""
    channel = local_channel.copy_to(tmp_path / "channel")
    with serve_slowly(channel.root, delay=0.2, only="numpy-2.4.0") as server:
        project = make_project(tmp_path, server.url)
        cli.ok("install", env=project.env)
        channel = channel.add(newer_numpy(channel))
        project.relock()
        child = run_install_process(project)
        try:
            wait_for(lambda: any((project.cache / "archives").glob("*/.numpy-2.4.0-*.part")))
            yield project, channel, child
        finally:
            if child.poll() is None:  # a failed assertion must not leave the installer running
                child.kill()
                child.communicate()


def test_sigkill_in_the_middle_of_a_download(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel
) -> None:
    with upgrade_in_mid_download(cli, tmp_path, local_channel) as (project, channel, child):
        parts = project.cache / "archives"
        child.kill()
        child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        assert installed_numpy(project.prefix) == "2.3.5"

    with serve_channel(channel.root) as url:
        # The same channel on a new port: point the lock at it and finish the upgrade.
        project.lockfile.write_text(project.lockfile.read_text().replace(project.channel_url, url))
        result = cli.ok("install", env=project.env)
        assert "installed" in result.stderr
    assert installed_numpy(project.prefix) == "2.4.0"
    assert not any(parts.glob("*/.*.part"))  # the killed download's partial file is gone
    assert leftovers(project.prefix) == []


def test_two_concurrent_installs_take_turns(tmp_path: Path, local_channel: LocalChannel) -> None:
    """The first install holds the prefix lock while its pytorch download is held by the
    server until the second install is seen waiting: no start-up time on a loaded machine can
    let the first finish before the second arrives."""
    with serve_slowly(local_channel.root, delay=0, only="pytorch-2.13.0") as server:
        server.gate.clear()
        project = make_project(tmp_path, server.url)
        first = run_install_process(project)
        children = [first]
        said: list[str] = []
        try:
            wait_for(server.started.is_set, timeout=60, what="the first install's download")
            second = run_install_process(project)
            children.append(second)
            assert second.stderr is not None
            reader = threading.Thread(
                target=lambda: said.extend(iter(second.stderr.readline, "")), daemon=True
            )
            reader.start()
            # Generous: a second process's start-up took over a minute under a heavy load; the
            # failure this catches is a second install that never waits (or hangs).
            try:
                wait_for(
                    lambda: any("waiting for another install" in line for line in said),
                    timeout=240,
                    what="the second install waiting",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; it said: {said}") from None
            server.gate.set()  # now let the first one finish
            out_first = first.communicate(timeout=120)
            second.wait(timeout=120)
            reader.join(timeout=10)
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.communicate()
    out_second = "".join(said)
    assert first.returncode == 0, out_first[1]
    assert second.returncode == 0, out_second
    assert "installed 9 packages" in out_first[1]
    assert "waiting for another install" in out_second
    assert "is up to date" in out_second
    assert installed_numpy(project.prefix) == "2.3.5"
    assert leftovers(project.prefix) == []


def test_recover_puts_back_an_environment_moved_aside_by_the_two_rename_fallback(
    tmp_path: Path,
) -> None:
    """A crash between the fallback's two renames leaves no prefix and a complete old one."""
    prefix = tmp_path / "env"
    old = tmp_path / ".env.old-abc"
    staging = tmp_path / ".env.staging-def"
    for path in (old, staging):
        (path / "conda-meta").mkdir(parents=True)
    prefixes.write_state(old, {"packages": []})
    prefixes.recover(prefix)
    assert prefixes.read_state(prefix) is not None
    assert not old.exists() and not staging.exists()


def test_two_rename_fallback_swaps_when_the_filesystem_cannot_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefixes, "_exchange", lambda a, b: False)
    prefix, staging = tmp_path / "env", tmp_path / ".env.staging-x"
    for path, name in ((prefix, "old"), (staging, "new")):
        path.mkdir()
        (path / "marker").write_text(name)
    prefixes.swap_into_place(staging, prefix)
    assert (prefix / "marker").read_text() == "new"
    assert (staging / "marker").read_text() == "old"  # for the caller to delete


def test_exchange_swaps_two_directories_atomically(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a, b):
        path.mkdir()
        (path / "name").write_text(path.name)
    assert prefixes._exchange(a, b)  # Linux renameat2 / macOS renamex_np on this filesystem
    assert (a / "name").read_text() == "b"
    assert (b / "name").read_text() == "a"


def test_ctrl_c_in_the_middle_of_a_download(
    cli: Cli, tmp_path: Path, local_channel: LocalChannel
) -> None:
    with upgrade_in_mid_download(cli, tmp_path, local_channel) as (project, _, child):
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "interrupted: nothing was changed" in stderr
    assert "Traceback" not in stderr
    assert installed_numpy(project.prefix) == "2.3.5"
    assert leftovers(project.prefix) == []
    assert not any((project.cache / "archives").glob("*/.*.part"))


@pytest.fixture
def ctrl_c_handler() -> Iterator[None]:
    """Python's own SIGINT handler, also where pytest started with SIGINT ignored (`... &`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupted_fetch_returns_only_after_every_download_cleaned_up(
    tmp_path: Path, ctrl_c_handler: None
) -> None:
    """Ctrl-C (a real SIGINT to this process) while a slow download is in flight:
    ``fetch_all`` raises KeyboardInterrupt soon, and only once the download thread has stopped
    and deleted its partial file. The CLI leaves with ``os._exit`` right after, which would
    kill a thread still writing and leave its ``.part``."""
    import hashlib
    import os
    import threading
    from urllib.parse import urlsplit

    from setup_tool.install.download import PackageCache, _fetch_one, fetch_all

    fetch_one_code = _fetch_one.__code__
    from setup_tool.install.lockread import LockedPackage

    served = tmp_path / "served" / "linux-64"
    served.mkdir(parents=True)
    payload = os.urandom(64 * 1024)  # 256 throttled pieces: 25 s, were it not stopped
    (served / "big-1.0-0.conda").write_bytes(payload)
    cache = PackageCache(tmp_path / "cache")
    with serve_slowly(served.parent, delay=0.1) as server:
        package = LockedPackage(
            name="big",
            version="1.0",
            build="0",
            url=f"{server.url}/linux-64/big-1.0-0.conda",
            sha256=hashlib.sha256(payload).hexdigest(),
            md5="",
            platform="linux-64",
        )

        def interrupt_once_started() -> None:
            if server.started.wait(timeout=30):
                os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_once_started, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            fetch_all([package], cache)
        # Checked at once, not waited for: this is what the process looks like at exit. A
        # worker thread may still be alive, idle (a Ctrl-C inside `submit` can keep the
        # executor from joining it, which is the race this guards against); none may be
        # inside a fetch.
        assert not _threads_inside(fetch_one_code)
        assert not list((cache.archives).glob("*/.*.part"))
        assert not cache.has(package)
        # Stopped mid-transfer, not at the end of one long read.
        assert server.sent[urlsplit(package.url).path] < len(payload)


def _threads_inside(code: object) -> list[int]:
    """Ids of the threads whose stack is running ``code`` right now."""
    import sys

    inside = []
    for ident, frame in sys._current_frames().items():
        walker: FrameType | None = frame
        while walker is not None:
            if walker.f_code is code:
                inside.append(ident)
                break
            walker = walker.f_back
    return inside
