"""Stamps of verified files: how an install skips re-hashing what has not changed since.

Hashing is the install's biggest cost after the I/O itself: a 3 GB PyTorch CUDA environment
is 3 GB of archives to hash, then 3 GB of extracted files that py-rattler's full validation
hashes again (``docs/PERFORMANCE.md`` has the figures). A stamp, written right after a file's
content was verified, records the file's identity: device, inode, size and modification time
in nanoseconds. Any write to a file moves its mtime, and replacing it changes its inode, so a
file whose ``lstat`` still matches its stamp holds the bytes that were verified; only then is
the hash skipped. Everything else is hashed as before.

What a stamp cannot see: an edit that also puts back the size and the exact nanosecond mtime
(``os.utime``), or bits flipped by the disk under an unchanged inode. ``install
--verify-cache`` ignores the stamps and hashes everything, as every install did before.

Two kinds, under ``<cache>/stamps/``:

- ``files/<key>.json``: one verified archive (a cached download, or a ``file://`` channel's
  own file), keyed by its path; holds the archive's sha256 and identity.
- ``extracted/<name>-<version>-<build>.json``: one package directory of py-rattler's
  extracted-package cache, with the identity of every file in it and the sha256 of the
  archive it was extracted from.

A stamp is only a shortcut: losing one (or the whole ``stamps/`` folder) costs a re-hash,
never correctness. Stamps are written atomically (temporary file, rename), without fsync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FileId:
    """Who a file is, and what size and age: it changes whenever its content can have."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileId | None:
        try:
            info = path.lstat()
        except OSError:
            return None
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def to_json(self) -> list[int]:
        return [self.device, self.inode, self.size, self.mtime_ns]


class Stamps:
    """The stamp store of one package cache (``<cache>/stamps``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- archives --------------------------------------------------------------------------

    def verified_archive(self, path: Path) -> str | None:
        """The sha256 ``path`` had when it was verified, if it is still that same file."""
        stamp = _read(self._file_stamp(path))
        identity = FileId.of(path)
        if stamp is None or identity is None or stamp.get("id") != identity.to_json():
            return None
        sha256 = stamp.get("sha256")
        return sha256 if isinstance(sha256, str) else None

    def record_archive(self, path: Path, sha256: str, identity: FileId | None = None) -> None:
        """Stamp ``path`` as verified to have ``sha256`` (``identity``: as it was then)."""
        identity = identity or FileId.of(path)
        if identity is not None:
            _write(self._file_stamp(path), {"id": identity.to_json(), "sha256": sha256})

    def _file_stamp(self, path: Path) -> Path:
        key = hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
        return self.root / "files" / f"{key}.json"

    # --- extracted packages ----------------------------------------------------------------

    def verified_extracted(self, directory: Path, sha256: str) -> bool:
        """Whether ``directory`` holds exactly the files stamped after its verified extraction."""
        stamp = _read(self._extracted_stamp(directory))
        if stamp is None or stamp.get("sha256") != sha256:
            return False
        return stamp.get("files") == _tree_ids(directory)

    def record_extracted(self, directory: Path, sha256: str) -> None:
        """Stamp a package directory py-rattler has just extracted or fully validated."""
        files = _tree_ids(directory)
        if files:
            _write(self._extracted_stamp(directory), {"sha256": sha256, "files": files})

    def forget_extracted(self, directory: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._extracted_stamp(directory).unlink()

    def _extracted_stamp(self, directory: Path) -> Path:
        return self.root / "extracted" / f"{directory.name}.json"


def _tree_ids(directory: Path) -> dict[str, list[int]]:
    """relative path → identity of every entry under ``directory`` (links not followed).

    The hot loop of a repeat install (40,000 files for a PyTorch CUDA environment): one
    ``lstat`` per file, and relative paths built by string concatenation, not ``relpath``.
    """
    found: dict[str, list[int]] = {}
    pending = [("", os.fspath(directory))]
    while pending:
        prefix, current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append((relative + "/", entry.path))
                continue
            info = entry.stat(follow_symlinks=False)
            found[relative] = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, and silently best-effort: a stamp that cannot be written costs a re-hash."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # noqa: PTH108
            raise
