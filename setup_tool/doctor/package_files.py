"""Are a package's files in a conda prefix still the ones its install wrote?

``conda-meta/<name>-<version>-<build>.json`` lists every file a package installed, with its
size and sha256 (``paths_data``, conda's prefix record format, which py-rattler's installer
writes too). The lock check compares those records with the lock; this compares the files with
the records, which tells "the package is broken" (files as installed) from "the environment
was changed by hand" (files differ). Used when torch imports but does not work.

Reading a real PyTorch's record and stat-ing its files takes milliseconds; file contents are
hashed only for small Python sources (``HASHED_SUFFIXES`` up to ``HASH_LIMIT_BYTES``), so the
gigabyte of shared libraries is checked by size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HASHED_SUFFIXES = (".py",)
HASH_LIMIT_BYTES = 1 << 20
SHOWN = 3


@dataclass(frozen=True)
class PackageFiles:
    """One installed package and how its files compare with its conda-meta record."""

    prefix: Path
    name: str
    version: str
    build: str
    channel: str | None  # where it was installed from (the record's channel or url)
    checked: int
    changed: tuple[str, ...] = ()  # size or sha256 differs
    missing: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.changed and not self.missing

    def describe_differences(self) -> str:
        parts = []
        for label, paths in (("changed", self.changed), ("missing", self.missing)):
            if paths:
                more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
                parts.append(f"{len(paths)} {label}: {', '.join(paths[:SHOWN])}{more}")
        return "; ".join(parts)


def conda_prefix_of(path: Path) -> Path | None:
    """The conda prefix a file or directory was installed into (the nearest conda-meta/)."""
    for parent in (path, *path.parents):
        if (parent / "conda-meta").is_dir():
            return parent
    return None


def package_owning(prefix: Path, relative_suffix: str) -> PackageFiles | None:
    """The package whose record lists a file ending in ``relative_suffix``, checked.

    ``relative_suffix`` is like ``site-packages/torch/__init__.py``; None when no record lists
    it (not a conda prefix, or the file came from pip).
    """
    meta = prefix / "conda-meta"
    if not meta.is_dir():
        return None
    for path in sorted(meta.glob("*.json")):
        record = _read_record(path)
        if record is None:
            continue
        files = record.get("files") or ()
        if any(isinstance(f, str) and f.endswith(relative_suffix) for f in files):
            return verify(prefix, record)
    return None


def verify(prefix: Path, record: Mapping[str, Any]) -> PackageFiles:
    entries = (record.get("paths_data") or {}).get("paths") or [
        {"_path": f} for f in record.get("files") or ()
    ]
    changed: list[str] = []
    missing: list[str] = []
    for entry in entries:
        relative = entry.get("_path")
        if not isinstance(relative, str):
            continue
        state = _compare(prefix / relative, entry)
        if state == "missing":
            missing.append(relative)
        elif state == "changed":
            changed.append(relative)
    return PackageFiles(
        prefix=prefix,
        name=str(record.get("name")),
        version=str(record.get("version")),
        build=str(record.get("build")),
        channel=record.get("channel") or record.get("url"),
        checked=len(entries),
        changed=tuple(changed),
        missing=tuple(missing),
    )


def _compare(path: Path, entry: Mapping[str, Any]) -> str:
    try:
        size = path.lstat().st_size
    except OSError:
        return "missing"
    if entry.get("path_type") == "softlink":
        return "same"
    # A file rewritten for its prefix (a placeholder replaced) records the result's hash as
    # sha256_in_prefix; without it, its original size and hash no longer apply.
    rewritten = bool(entry.get("prefix_placeholder"))
    expected_hash = entry.get("sha256_in_prefix") or (None if rewritten else entry.get("sha256"))
    expected_size = None if rewritten else entry.get("size_in_bytes")
    if expected_size is not None and size != expected_size:
        return "changed"
    hashed = expected_hash and path.suffix in HASHED_SUFFIXES and size <= HASH_LIMIT_BYTES
    if hashed and hashlib.sha256(path.read_bytes()).hexdigest() != expected_hash:
        return "changed"
    return "same"


def _read_record(path: Path) -> Mapping[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, Mapping) and "name" in record else None
