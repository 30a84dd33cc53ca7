"""Atomicity beyond test_install_crash.py: a real SIGKILL between the two renames of the
fallback swap, two concurrent installs that never have two staging trees at once, leftovers
matched by the prefix's exact name, and a lock rewritten while an install runs. Each time the
prefix holds one complete, working environment and the next run leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from channel import LocalChannel
from conftest import Cli
from install_helpers import (
    assert_env_matches,
    assert_no_leftovers,
    cli_env,
    env_torch,
    install_argv,
    installed,
    lock_project,
    locked_builds,
    serve_slowly,
    snapshot,
    wait_for,
)

from setup_tool.variants import Variant

KILLED = -signal.SIGKILL


@pytest.fixture
def locks(locked_project: Path) -> tuple[Path, Path]:
    """(old, new): the cpu lock for the environment in place, the cuda lock to replace it."""
    folder = locked_project / "envs" / "locks"
    return folder / "cpu.conda-lock.yml", folder / "cuda.conda-lock.yml"


@pytest.fixture
def old_env(cli: Cli, locks: tuple[Path, Path], tmp_path: Path) -> Path:
    prefix = tmp_path / "env"
    cli.ok("install", "--lockfile", str(locks[0]), "--prefix", str(prefix))
    assert_env_matches(prefix, locks[0])
    return prefix


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path / "cache", CONDA_OVERRIDE_CUDA="12.9", **extra)


def _rerun(cli: Cli, lockfile: Path, prefix: Path):
    """The next install, in-process (quicker than a subprocess; nothing to kill now)."""
    return cli.ok(
        "install", "--lockfile", str(lockfile), "--prefix", str(prefix),
        env={"CONDA_OVERRIDE_CUDA": "12.9"},
    )  # fmt: skip


_FALLBACK_KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import setup_tool.install.prefix as prefixes
prefixes._exchange = lambda a, b: False  # a filesystem without renameat2(RENAME_EXCHANGE)
rename = os.rename
def rename_then_die(src, dst):
    rename(src, dst)
    if ".old-" in str(dst):  # the live prefix just moved aside: die before staging moves in
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename_then_die
from setup_tool.cli import main
sys.argv = ["setup-tool", *sys.argv[1:]]
main()
"""


def test_sigkill_between_the_fallback_renames(
    cli: Cli, old_env: Path, locks: tuple[Path, Path], tmp_path: Path
) -> None:
    old_lock, new_lock = locks
    before = snapshot(old_env)
    argv = [
        sys.executable,
        "-c",
        _FALLBACK_KILLED_BETWEEN_RENAMES,
        *install_argv(new_lock, old_env)[3:],
    ]
    crashed = subprocess.run(
        argv, env=_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
    )
    assert crashed.returncode == KILLED, crashed.stderr
    # No environment at the prefix for now: the old one, complete, is beside it.
    assert not old_env.exists()
    (aside,) = tmp_path.glob(".env.old-*")
    assert installed(aside) == locked_builds(old_lock)

    # The next run, whatever it installs, first puts the old environment back.
    again = _rerun(cli, old_lock, old_env)
    assert f"==> restored the previous environment at {old_env}" in again.stderr
    assert "is up to date with cpu.conda-lock.yml" in again.stderr
    ignored = ("conda-meta", "setup-tool.state")  # the up-to-date run records the lock again
    assert {k: v for k, v in snapshot(old_env).items() if not k.endswith(ignored)} == {
        k: v for k, v in before.items() if not k.endswith(ignored)
    }
    _is_working_and_clean(old_env, old_lock)


def _is_working_and_clean(prefix: Path, lockfile: Path) -> None:
    assert_env_matches(prefix, lockfile)
    assert_no_leftovers(prefix)


@pytest.fixture
def slow_upgrade(tmp_path: Path, local_channel: LocalChannel, old_env: Path):
    """A cuda lock from a channel copy served at ~1.3 KiB/s per package (64 bytes / 50 ms)."""
    channel = local_channel.copy_to(tmp_path / "channel")
    with serve_slowly(channel.root, delay=0.05, chunk=64) as server:
        yield server, lock_project(tmp_path / "project", server.url, Variant.cuda)


def test_two_concurrent_installs_are_serialized(  # type: ignore[no-untyped-def]
    slow_upgrade, old_env: Path, tmp_path: Path
) -> None:
    server, new_lock = slow_upgrade
    env = _env(tmp_path)
    staging_seen: set[str] = set()
    most_at_once = 0
    stop = threading.Event()

    def watch() -> None:  # never two staging trees at once: the installs do not interleave
        nonlocal most_at_once
        while not stop.is_set():
            now = {p.name for p in tmp_path.glob(".env.staging-*")}
            staging_seen.update(now)
            most_at_once = max(most_at_once, len(now))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    argv = install_argv(new_lock, old_env)
    server.delay = 0.5  # the first install holds the prefix until the second is seen waiting
    first = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second_lines: list[str] = []
    try:
        assert server.started.wait(30), "the first install did not start downloading"
        second = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            reader = threading.Thread(
                target=lambda: second_lines.extend(iter(second.stderr.readline, "")),  # type: ignore[union-attr]
                daemon=True,
            )
            reader.start()
            wait_for(lambda: any("waiting" in line for line in second_lines), what="a waiter")
            server.delay = 0  # now let the first one finish
            second.wait(timeout=60)
            reader.join(timeout=10)
        finally:
            second.kill()
        _, first_err = first.communicate(timeout=60)
    finally:
        first.kill()
        stop.set()
        watcher.join()
    second_err = "".join(second_lines)

    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert "✓ installed 10 packages" in first_err
    assert f"==> waiting for another install into {old_env} (pid {first.pid}) to finish" in (
        second_err
    )
    assert "is up to date with cuda.conda-lock.yml" in second_err
    assert "fetching" not in second_err  # it found the first one's work done, and kept it
    assert most_at_once == 1 and len(staging_seen) == 1
    # Each package downloaded once, by the first (the old environment came from a file://
    # channel, whose files are hashed in place, not cached: all 10 are new to the cache).
    assert len(server.requests) == len(set(server.requests)) == 10
    _is_working_and_clean(old_env, new_lock)


def test_leftovers_are_matched_by_exact_name(
    cli: Cli, locks: tuple[Path, Path], tmp_path: Path
) -> None:
    """Leftovers are found by name pattern; a prefix called env[1] is not a pattern for env1."""
    neighbours = tmp_path / ".env1.staging-0123456789ab"  # env1's install, still running
    (neighbours / "conda-meta").mkdir(parents=True)
    ours = tmp_path / ".env[1].staging-ba9876543210"  # left by a killed install into env[1]
    ours.mkdir()
    result = cli.ok("install", "--lockfile", str(locks[0]), "--prefix", str(tmp_path / "env[1]"))
    assert f"removing {ours.name} left by an interrupted install" in result.stderr
    assert not ours.exists() and neighbours.is_dir()
    _is_working_and_clean(tmp_path / "env[1]", locks[0])


def test_lock_rewritten_during_an_install_is_not_taken_for_installed(
    cli: Cli, locks: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relock (here: the cuda lock copied over the cpu one) while an install links."""
    lockfile = tmp_path / "team.conda-lock.yml"
    lockfile.write_bytes(locks[0].read_bytes())
    from setup_tool.install import link as linking

    real_link = linking.link

    def link_while_relocking(*args, **kwargs) -> None:
        real_link(*args, **kwargs)
        lockfile.write_bytes(locks[1].read_bytes())

    monkeypatch.setattr(linking, "link", link_while_relocking)
    prefix = tmp_path / "env"
    cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(prefix))
    assert installed(prefix) == locked_builds(locks[0])  # what was read is what was installed
    monkeypatch.setattr(linking, "link", real_link)

    # The next run must see a lock it has not installed (not take the fast path).
    _rerun(cli, lockfile, prefix)
    assert_env_matches(prefix, lockfile)
    assert env_torch(prefix)["cuda"] == "12.9"
