"""Bad input beyond test_install_integrity.py: lockfiles cut where the YAML stays valid (and
every line of one), a malformed hash, a lockfile that is a directory, a file or symlink at the
prefix (not even a lock file made next to it), a real full disk, a mount point. Each is a
clear error with a hint, a non-zero exit, and nothing changed."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Cli
from install_helpers import assert_env_matches, env_torch, snapshot

from setup_tool.errors import ExitCode, LockfileInvalid
from setup_tool.install.lockread import read_locked_platform


def _fails(cli: Cli, lockfile: Path, prefix: Path, code: int, *watch: Path) -> tuple[str, str]:
    """Run an install that must fail with ``code``; nothing under ``watch`` may change."""
    before = snapshot(*watch)
    result = cli("install", "--lockfile", str(lockfile), "--prefix", str(prefix))
    assert result.exit_code == code, result.output
    assert snapshot(*watch) == before
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("error: ") and hint.startswith("hint: "), result.stderr
    return error, hint


def _cut_after_entry(text: str, entries: int) -> str:
    """The lock cut right after its ``entries``-th package: still valid YAML and conda-lock."""
    end = 0
    for _ in range(entries):
        end = text.index("  optional: false\n", end) + len("  optional: false\n")
    return text[:end]


# Beyond test_install_integrity.py's (half a file, garbage, empty, a list, unknown version):
# cuts that leave valid YAML, and a hash that cannot be one.
CORRUPTIONS: dict[str, Callable[[str], str]] = {
    "comments-only": lambda text: text[: text.index("version: 1")],
    "cut-in-metadata": lambda text: text[: text.index("package:") - 40],
    "cut-mid-package": lambda text: _cut_after_entry(text, 5)[:-30],
    "cut-between-packages": lambda text: _cut_after_entry(text, 3),  # filelock, not python
    "malformed-sha256": lambda text: re.sub(r"sha256: [0-9a-f]{64}", "sha256: 4dcaec6e66", text),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_lockfile_is_refused(
    cli: Cli, cpu_lock: Path, tmp_path: Path, corrupt: Callable[[str], str]
) -> None:
    lockfile = tmp_path / "cpu.conda-lock.yml"
    lockfile.write_text(corrupt(cpu_lock.read_text()))
    prefix = tmp_path / "envs" / "cpu"
    error, hint = _fails(cli, lockfile, prefix, ExitCode.ERROR, tmp_path)
    assert str(lockfile) in error
    assert re.search(r"not valid YAML|not a (valid )?conda-lock file|incomplete|malformed", error)
    assert "relock" in hint or "setup-tool lock" in hint or "git" in hint
    assert not prefix.parent.exists() and not (tmp_path / "cache").exists()


def test_a_cut_that_drops_dependencies_is_caught_at_every_line(
    cpu_lock: Path, tmp_path: Path
) -> None:
    """Cut the lock after every line: it is refused, or it is still the whole environment, or
    (the one gap, see ``lockread._check_complete``) it ends after a whole package and no package
    left depends on what was cut off."""
    text = cpu_lock.read_text()
    whole = read_locked_platform(cpu_lock, "linux-64").by_name()
    lockfile = tmp_path / "cut.conda-lock.yml"
    accepted_cuts = 0
    for end in [m.end() for m in re.finditer("\n", text)][::3]:
        lockfile.write_text(text[:end])
        try:
            got = read_locked_platform(lockfile, "linux-64").by_name()
        except LockfileInvalid:
            continue
        if got == whole:
            continue
        accepted_cuts += 1
        assert text[:end].endswith("  optional: false\n")
        needed = {n for p in got.values() for n, _ in p.dependencies if not n.startswith("__")}
        assert needed <= got.keys()
    assert accepted_cuts <= 3  # of ~200 cuts tried


def test_missing_lockfile_and_a_directory(cli: Cli, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    error, hint = _fails(cli, tmp_path / "nope.yml", prefix, ExitCode.ERROR, tmp_path)
    assert error == f"error: lockfile {tmp_path / 'nope.yml'} not found"
    assert "check the path given to --lockfile" in hint  # a user's file: not `setup-tool lock`
    (tmp_path / "adir").mkdir()
    result = cli("install", "--lockfile", str(tmp_path / "adir"), "--prefix", str(prefix))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "is a directory, not a conda-lock file" in result.stderr
    assert not prefix.exists()


def test_an_environment_spec_is_not_taken_for_a_lockfile(cli: Cli, tmp_path: Path) -> None:
    """The project's envs/base.yml (or any environment.yml) given as --lockfile: said so, with
    the step that makes a lockfile of it, not "restore it from git"."""
    spec = Path(__file__).parent.parent / "envs" / "base.yml"
    error, hint = _fails(cli, spec, tmp_path / "env", ExitCode.USAGE, tmp_path)
    assert (
        error == f"error: {spec} is an environment spec (it lists `dependencies`), not a lockfile"
    )
    assert "conda-lock lock" in hint and "setup-tool lock" in hint and "git" not in hint
    assert not (tmp_path / "env").exists()


@pytest.mark.parametrize("kind", ["directory", "file", "symlink"])
def test_existing_foreign_prefix_is_left_untouched(
    cli: Cli, cpu_lock: Path, tmp_path: Path, kind: str
) -> None:
    parent = tmp_path / "work"
    parent.mkdir()
    prefix = parent / "project-env"
    if kind == "directory":
        (prefix / "lib").mkdir(parents=True)
        (prefix / "lib" / "precious.txt").write_text("keep me\n")
    elif kind == "file":
        prefix.write_text("keep me\n")
    else:
        (parent / "elsewhere").mkdir()
        prefix.symlink_to(parent / "elsewhere")
    error, hint = _fails(cli, cpu_lock, prefix, ExitCode.USAGE, tmp_path)
    what = {
        "directory": "exists and is not an environment setup-tool made",
        "file": "is a file, not a directory",
        "symlink": "is a symbolic link",
    }[kind]
    assert error == f"error: {prefix} {what}; it was left untouched"
    assert "choose another --prefix" in hint
    # "Remove that directory" only where it is one.
    assert ("remove that directory" in hint) == (kind == "directory")
    # Not even the prefix lock file appears next to it.
    assert not (parent / ".project-env.lock").exists()
    assert not (tmp_path / "cache").exists()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path, str], Path]]:
    """Mounts a tmpfs of a given size at a path; needs root (the tests' VM has it), skipped
    where mounting is not allowed. Unmounted at the end."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        if not sys.platform.startswith("linux"):
            pytest.skip("tmpfs is Linux")
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path, tmpfs: Callable[[Path, str], Path]) -> Path:
    """128 KiB: room for the cpu test environment (84 KiB), not for a second copy."""
    return tmpfs(tmp_path / "disk", "128k")


def test_really_full_disk_while_linking(
    cli: Cli,
    locked_project: Path,
    cpu_lock: Path,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same on a real full filesystem: py-rattler reports it as its own error (os error
    28), which must read as a full disk, not as "clear the cache and report the error"."""
    prefix = small_disk / "env"
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix))
    before = snapshot(prefix)
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.9")
    cuda_lock = locked_project / "envs" / "locks" / "cuda.conda-lock.yml"
    result = cli("install", "--lockfile", str(cuda_lock), "--prefix", str(prefix))
    assert result.exit_code == ExitCode.ERROR, result.output
    assert f"error: no space left on the device while installing into {prefix}" in result.stderr
    assert "hint: free some space" in result.stderr
    assert snapshot(prefix) == before
    assert env_torch(prefix)["cuda"] is None
    assert sorted(p.name for p in small_disk.iterdir()) == [".env.lock", "env"]


def test_mount_point_prefix(
    cli: Cli, cpu_lock: Path, tmp_path: Path, tmpfs: Callable[[Path, str], Path]
) -> None:
    """A volume mounted at the prefix (a container's /opt/env): it cannot be swapped."""
    prefix = tmpfs(tmp_path / "volume", "1m")
    error, hint = _fails(cli, cpu_lock, prefix, ExitCode.USAGE, tmp_path)
    assert error == (
        f"error: {prefix} is a mount point; setup-tool replaces the environment directory as a "
        "whole, which a mount point cannot be"
    )
    assert hint == f"hint: use a directory inside it, e.g. --prefix {prefix / 'env'}"
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix / "env"))
    assert_env_matches(prefix / "env", cpu_lock)


@pytest.mark.parametrize("prefix", ["/proc/setup-tool-test-env", "/sys/setup-tool-test-env"])
def test_prefix_where_no_file_can_be_created(
    cli: Cli, cpu_lock: Path, tmp_path: Path, prefix: str
) -> None:
    """procfs refuses with ENOENT, sysfs with EACCES, both even for root (whom os.access
    calls them writable): one error line, not a traceback from the prefix lock."""
    parent = Path(prefix).parent
    if not parent.is_dir():
        pytest.skip(f"no {parent} here")
    error, hint = _fails(cli, cpu_lock, Path(prefix), ExitCode.ERROR, tmp_path)
    assert re.fullmatch(
        rf"error: cannot create the environment at {prefix}: files cannot be created in "
        rf"{parent} \([A-Za-z ]+\)",
        error,
    ), error
    assert hint == "hint: choose a --prefix in a directory you can write to"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("cache", ["/proc/setup-tool-test-cache", "a-file", "a-file/below"])
def test_cache_that_cannot_be_written(
    cli: Cli, cpu_lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    """SETUP_TOOL_CACHE in procfs, or at or under a regular file: one error, nothing made."""
    (tmp_path / "a-file").write_text("not a cache\n")
    if cache.startswith("/proc") and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    root = Path(cache) if cache.startswith("/") else tmp_path / cache
    monkeypatch.setenv("SETUP_TOOL_CACHE", str(root))
    prefix = tmp_path / "env"
    error, hint = _fails(cli, cpu_lock, prefix, ExitCode.ERROR, tmp_path / "a-file")
    why = (
        "cannot write in /proc (No such file or directory)"
        if cache.startswith("/proc")
        else f"{tmp_path / 'a-file'} is a file, not a directory"
    )
    assert error == f"error: cannot use the package cache at {root}: {why}"
    assert hint.startswith("hint: point SETUP_TOOL_CACHE at a directory you can write to")
    assert not prefix.exists()


def test_unknown_category_lists_the_locks_categories(
    cli: Cli, cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    result = cli(
        "install", "--lockfile", str(cpu_lock), "--prefix", str(prefix), "--category", "nosuch"
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    error, hint = result.stderr.splitlines()[-2:]
    assert error == "error: cpu.conda-lock.yml has no category 'nosuch' for linux-64 (it has: main)"
    assert hint == "hint: pass one of those to --category, or leave --category out for main only"
    assert not prefix.exists()
    # An install with the categories it has still works, and its state never names nosuch.
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix))
    again = cli(
        "install", "--lockfile", str(cpu_lock), "--prefix", str(prefix), "--category", "nosuch"
    )
    assert again.exit_code == ExitCode.USAGE, again.output
    assert read_state_categories(prefix) == ["main"]


def read_state_categories(prefix: Path) -> object:
    from setup_tool.install.prefix import read_state

    state = read_state(prefix)
    return None if state is None else state.get("categories")


def test_install_outside_a_project_says_how_to_point_at_one(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No envs/ here or above: `setup-tool lock` would have nothing to lock, so the hint says
    where to run, or to pass --lockfile."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SETUP_TOOL_PROJECT", raising=False)
    monkeypatch.setenv("SETUP_TOOL_VARIANT", "cpu")
    result = cli("install")
    assert result.exit_code == ExitCode.ERROR, result.output
    error, hint = result.stderr.splitlines()[-2:]
    assert error == f"error: lockfile {tmp_path}/envs/locks/cpu.conda-lock.yml not found"
    assert "SETUP_TOOL_PROJECT" in hint and "--lockfile" in hint
    assert "setup-tool lock" not in hint
    assert not (tmp_path / ".envs").exists()
