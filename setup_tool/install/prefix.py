"""Atomic environment prefixes: a new environment appears all at once, or not at all.

conda packages are not relocatable: text and binary files carry the install prefix, written
in at link time. So an environment cannot be built in a scratch directory and moved. Instead:

1. A new environment is linked into a hidden *staging* directory next to the prefix,
   ``<parent>/.<name>.staging-<id>``, with py-rattler told to write the **final** prefix into
   every file (``alternative_target_prefix``). Files therefore point at ``<prefix>`` from the
   start, and the staging tree is only a place to build them.
2. When every package is linked, a state file (``conda-meta/setup-tool.state``) is written
   and fsynced *last*: a directory without it is never a valid environment.
3. The staging directory and the live prefix are swapped in one atomic step:
   ``renameat2(RENAME_EXCHANGE)`` on Linux, ``renamex_np(RENAME_SWAP)`` on macOS. Where the
   filesystem cannot exchange, two renames are used (prefix → ``.<name>.old-<id>``, staging →
   prefix); a crash between them leaves no prefix but a complete old one, which the next run
   puts back before doing anything else.
4. The old environment (now at the staging path) is deleted.

A crash or Ctrl-C at any point leaves the previous environment in place and working;
leftover staging directories are removed by the next run, which holds the prefix lock
(``<parent>/.<name>.lock``, ``flock``) so two installs never interleave.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import glob
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from setup_tool.errors import SetupToolError

STATE_FILE = Path("conda-meta") / "setup-tool.state"
STATE_SCHEMA = 1


def state_path(prefix: Path) -> Path:
    return prefix / STATE_FILE


def read_state(prefix: Path) -> dict[str, Any] | None:
    """The state file of a complete setup-tool environment, or None."""
    try:
        data = json.loads(state_path(prefix).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == STATE_SCHEMA else None


def write_state(prefix: Path, state: dict[str, Any]) -> None:
    """Write the state file durably: it is what makes a directory a valid environment."""
    path = state_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump({"schema": STATE_SCHEMA, **state}, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def installed_records(prefix: Path) -> dict[str, dict[str, str]]:
    """name → {name, version, build, sha256, md5} from ``conda-meta/*.json``: what is really
    installed (the state file says what was installed; the two differ after tampering)."""
    records = {}
    for meta in (prefix / "conda-meta").glob("*.json"):
        try:
            record = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue  # an unreadable record counts as a package that is not there
        if isinstance(record, dict) and "name" in record:
            records[record["name"]] = {
                key: str(record.get(key, ""))
                for key in ("name", "version", "build", "sha256", "md5")
            }
    return records


def records_match_state(prefix: Path, state: dict[str, Any]) -> bool:
    """Cheap check that conda-meta still has exactly the records the state file lists (file
    names only, no parsing): a package removed or added by hand fails it."""
    expected = {
        f"{p.get('name')}-{p.get('version')}-{p.get('build')}.json"
        for p in state.get("packages", [])
        if isinstance(p, dict)
    }
    try:
        present = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    except OSError:
        return False
    return present == expected


def is_foreign(prefix: Path) -> bool:
    """An existing, non-empty directory setup-tool did not make (never replace such a thing)."""
    if not prefix.exists() and not prefix.is_symlink():
        return False
    if not prefix.is_dir() or prefix.is_symlink():
        return True
    return read_state(prefix) is None and any(prefix.iterdir())


def staging_dir(prefix: Path) -> Path:
    return prefix.parent / f".{prefix.name}.staging-{uuid.uuid4().hex[:12]}"


def _leftovers(prefix: Path, kind: str) -> list[Path]:
    # Escaped: a prefix called env[1] must not match (and delete) env1's staging tree.
    return sorted(prefix.parent.glob(f".{glob.escape(prefix.name)}.{kind}-*"))


def has_leftovers(prefix: Path) -> bool:
    """Whether an interrupted install left a staging or old directory next to the prefix."""
    return bool(_leftovers(prefix, "staging") or _leftovers(prefix, "old"))


def recover(prefix: Path, log: Callable[[str], None] = lambda _: None) -> None:
    """Undo what an interrupted install left behind. Call with the prefix lock held."""
    if not prefix.exists():
        for old in _leftovers(prefix, "old"):
            if read_state(old) is not None:
                os.rename(old, prefix)
                log(f"restored the previous environment at {prefix} (an install was interrupted)")
                break
    for leftover in _leftovers(prefix, "staging") + _leftovers(prefix, "old"):
        log(f"removing {leftover.name} left by an interrupted install")
        remove_tree(leftover)


def swap_into_place(staging: Path, prefix: Path) -> None:
    """Make ``staging`` the environment at ``prefix`` atomically; the old one ends at ``staging``.

    Called only with a complete staging environment (state file written).
    """
    if not prefix.exists():
        os.rename(staging, prefix)
        _fsync_dir(prefix.parent)
        return
    if prefix.is_dir() and not any(prefix.iterdir()):
        prefix.rmdir()  # an empty directory the user made for us
        os.rename(staging, prefix)
        _fsync_dir(prefix.parent)
        return
    if _exchange(staging, prefix):
        _fsync_dir(prefix.parent)
        return
    old = prefix.parent / f".{prefix.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(prefix, old)
    os.rename(staging, prefix)  # a crash before this line is undone by recover()
    _fsync_dir(prefix.parent)
    os.rename(old, staging)


def remove_tree(path: Path) -> None:
    """Delete a directory tree, tolerating read-only files (some packages ship them)."""

    def retry_writable(function: Callable[[str], None], name: str, *_: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(name, 0o700)
            function(name)

    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)
    else:
        shutil.rmtree(path, onerror=retry_writable)


def remove_tree_settled(path: Path, quiet_s: float = 0.25, limit_s: float = 5.0) -> None:
    """Delete a staging tree that a failed py-rattler install may still be writing to.

    py-rattler 0.28 returns the first link error while its other link tasks run on for a
    moment, re-creating files in the tree just deleted (reproduced by
    ``scripts/repro-rattler-link-after-error.py``: a tree of 700+ entries, still growing
    0.4 s after the error, in 1-3 of 5 failed installs). Delete until it stays gone for
    ``quiet_s`` (at most ``limit_s``; whatever is left then is removed by the next run).
    Only the failure path pays this wait.
    """
    deadline = time.monotonic() + limit_s
    while True:
        remove_tree(path)
        time.sleep(quiet_s)
        if not (path.exists() or path.is_symlink()) or time.monotonic() > deadline:
            return


# --- the prefix lock -------------------------------------------------------------------------


@contextlib.contextmanager
def prefix_lock(
    prefix: Path, on_wait: Callable[[str], None] = lambda _: None, poll_s: float = 0.2
) -> Iterator[None]:
    """Hold ``<parent>/.<name>.lock`` (flock): a second install waits for the first, then goes on.

    The lock dies with its process (SIGKILL included), so a crashed install never blocks the
    next one. The holder's pid is written into the file so a waiter can say who it waits for.
    """
    import fcntl

    path = prefix.parent / f".{prefix.name}.lock"
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        # e.g. /proc/x (ENOENT: no file can be made there), /sys/x (EACCES even for root), a
        # read-only filesystem (EROFS): os.access says "writable" to root for all of them.
        where = next((p for p in prefix.parents if p.is_dir()), prefix.parent)
        raise SetupToolError(
            f"cannot create the environment at {prefix}: files cannot be created in {where} "
            f"({exc.strerror or exc})",
            "choose a --prefix in a directory you can write to",
        ) from None
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    on_wait(f"waiting for another install into {prefix} (pid {holder}) to finish")
                    told = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# --- atomic exchange of two directories ------------------------------------------------------

_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 0x2  # macOS sys/stdio.h
_AT_FDCWD = -100
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically. False when this OS or filesystem cannot (then use renames)."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return False
    if sys.platform == "darwin":
        function = getattr(libc, "renamex_np", None)
        if function is None:
            return False
        result = function(os.fsencode(a), os.fsencode(b), ctypes.c_uint(_RENAME_SWAP))
    elif sys.platform.startswith("linux"):
        function = getattr(libc, "renameat2", None)
        if function is not None:
            result = function(
                _AT_FDCWD,
                os.fsencode(a),
                _AT_FDCWD,
                os.fsencode(b),
                ctypes.c_uint(_RENAME_EXCHANGE),
            )
        else:  # glibc < 2.28 has the system call but no wrapper
            number = _SYS_RENAMEAT2.get(os.uname().machine)
            if number is None:
                return False
            result = libc.syscall(
                number, _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
            )
    else:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
