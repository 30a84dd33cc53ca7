"""A package archive's ``info/index.json``, read without reading the archive.

The linker needs each package's own index (a lock does not say whether a package is
``noarch: python``). py-rattler's ``IndexJson.from_package_archive`` streams the archive from
its start, and a ``.conda`` made by conda-package-handling 2 stores its ``info-`` part after
its ``pkg-`` part (conda-package-handling's README, "A new major version"), so it read every
byte: 11 s for the 3.3 GiB of a PyTorch CUDA environment, on each install, cached or not. A
``.conda`` is a zip: its central directory says where ``info-*.tar.zst`` starts, so this
seeks there and decompresses only that (a few KB). A ``.tar.bz2`` is read as a stream until
``info/index.json``, which conda's tools put near the start.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

INDEX = "info/index.json"


def index_json(archive: Path) -> Any:
    """py-rattler's ``IndexJson`` of the package archive at ``archive``."""
    from rattler import IndexJson

    text = _conda_index(archive) if archive.name.endswith(".conda") else _tar_bz2_index(archive)
    if text is None:  # an unusual layout: let py-rattler find it, however long it takes
        return IndexJson.from_package_archive(archive)
    return IndexJson.from_str(text)


def _conda_index(archive: Path) -> str | None:
    import zstandard

    with zipfile.ZipFile(archive) as package:
        info = next((n for n in package.namelist() if n.startswith("info-")), None)
        if info is None or not info.endswith(".tar.zst"):
            return None
        with package.open(info) as member:
            reader = zstandard.ZstdDecompressor().stream_reader(member)
            return _from_tar_stream(io.BufferedReader(reader))


def _tar_bz2_index(archive: Path) -> str | None:
    with archive.open("rb") as handle:
        return _from_tar_stream(handle, mode="r|bz2")


def _from_tar_stream(stream: io.BufferedIOBase, mode: str = "r|") -> str | None:
    with tarfile.open(fileobj=stream, mode=mode) as tar:  # type: ignore[call-overload]
        for member in tar:
            if member.name == INDEX:
                extracted = tar.extractfile(member)
                return None if extracted is None else extracted.read().decode()
    return None
