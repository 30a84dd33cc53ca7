"""Linking verified archives into a staging prefix with py-rattler.

Records are built from each archive's own ``info/index.json`` (a lock does not say whether a
package is ``noarch: python``, which decides where its files go), with the lock's hashes.
py-rattler gets ``file://`` URLs of the archives ``download.py`` just verified, and writes the
final prefix into every file (``alternative_target_prefix``, see ``prefix.py``). Its
extracted-package cache is fully re-validated only when a stamp says a folder may have changed
(``_unproven_extractions``). Afterwards
each ``conda-meta/*.json`` gets back the package's real URL and channel, so ``conda list``
and the doctor's drift check see where the package came from, not the cache path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from setup_tool.install.download import Fetched
from setup_tool.install.lockread import LockedPackage
from setup_tool.install.stamps import Stamps


def rattler_errors() -> tuple[type[Exception], ...]:
    """The exceptions py-rattler raises (``InstallerError``, ``LinkError``, ``IoError``...).

    Their ``__module__`` is ``exceptions``, not ``rattler...``, so they are told apart by class.
    """
    import rattler.exceptions

    return tuple(
        value
        for value in vars(rattler.exceptions).values()
        if isinstance(value, type) and issubclass(value, Exception)
    )


def _records(fetched: Sequence[Fetched[LockedPackage]]) -> list[Any]:
    from rattler import PackageRecord, RepoDataRecord

    from setup_tool.install.archive_info import index_json

    records = []
    for item in fetched:
        package = item.package
        index = index_json(item.path)
        record = PackageRecord(
            name=package.name,
            version=package.version,
            build=index.build,
            build_number=index.build_number,
            subdir=index.subdir or package.subdir,
            arch=index.arch,
            platform=index.platform,
            noarch=index.noarch,
            depends=list(index.depends),
            constrains=list(index.constrains),
            sha256=bytes.fromhex(item.sha256 or package.sha256),
            md5=bytes.fromhex(package.md5) if package.md5 else None,
            size=item.path.stat().st_size,
            license=index.license,
            license_family=index.license_family,
            python_site_packages_path=index.python_site_packages_path,
        )
        records.append(
            RepoDataRecord(record, package.filename, item.path.as_uri(), package.channel)
        )
    return records


class _LinkReporter:
    """Forwards py-rattler's link callbacks as one "linked N of M" count."""

    def __init__(self, on_linked: Callable[[], None]) -> None:
        self.on_linked = on_linked

    def make(self) -> Any:
        from rattler import InstallerReporter

        on_linked = self.on_linked

        class Reporter(InstallerReporter):
            def on_link_complete(self, *args: Any, **kwargs: Any) -> None:
                on_linked()

        return Reporter()  # type: ignore[abstract]  # the base's other hooks are no-ops


def link(
    fetched: Sequence[Fetched[LockedPackage]],
    *,
    staging: Path,
    final_prefix: Path,
    platform: str,
    cache_dir: Path,
    stamps: Stamps,
    verify_cache: bool = False,
    on_linked: Callable[[], None] | None = None,
) -> None:
    """Create a complete environment in ``staging`` whose files point at ``final_prefix``."""
    import rattler

    records = _records(fetched)
    reporter = _LinkReporter(on_linked).make() if on_linked else None
    proven = set() if verify_cache else _proven_extractions(fetched, cache_dir, stamps)
    full = verify_cache or any(
        _extracted_dir(cache_dir, item).exists() and item.package.filename not in proven
        for item in fetched
    )
    package_cache = rattler.PackageCache.new_layered(
        [cache_dir],
        validation_mode=rattler.ValidationMode.full() if full else rattler.ValidationMode.fast(),
    )
    asyncio.run(
        rattler.install(
            records,
            target_prefix=staging,
            alternative_target_prefix=final_prefix,
            package_cache=package_cache,
            platform=rattler.Subdir(platform),  # `Platform` is deprecated in 0.28
            installed_packages=[],  # staging is always new: never scan it
            execute_link_scripts=False,
            show_progress=False,
            reporter=reporter,
        )
    )
    _stamp_extractions(fetched, cache_dir, stamps, set() if full else proven)
    _restore_origins(staging, fetched)


def _extracted_dir(cache_dir: Path, item: Fetched[LockedPackage]) -> Path:
    """py-rattler's folder for a package in its cache: ``<name>-<version>-<build>``."""
    return cache_dir / item.package.filename.removesuffix(".conda").removesuffix(".tar.bz2")


def _proven_extractions(
    fetched: Sequence[Fetched[LockedPackage]], cache_dir: Path, stamps: Stamps
) -> set[str]:
    """File names of the packages whose extracted folder is exactly what was stamped.

    Files are hard-linked from the extracted-package cache, so an in-place edit in any
    environment edits the cache too, and would be linked into every later environment
    although its archive's hash matched the lock. A folder whose files all still match its
    stamp (``stamps.py``) was not touched since py-rattler extracted or fully validated it.
    If any existing folder is not proven so, the whole link runs with py-rattler's full
    validation, which re-hashes each cached file against the package's paths.json and
    re-extracts from the verified archive where one differs. Folders not there yet are
    extracted afresh from the verified archive.
    """
    return {
        item.package.filename
        for item in fetched
        if item.sha256 and stamps.verified_extracted(_extracted_dir(cache_dir, item), item.sha256)
    }


def _stamp_extractions(
    fetched: Sequence[Fetched[LockedPackage]], cache_dir: Path, stamps: Stamps, proven: set[str]
) -> None:
    """Stamp the folders py-rattler has just extracted or fully validated."""
    for item in fetched:
        if item.sha256 and item.package.filename not in proven:
            stamps.record_extracted(_extracted_dir(cache_dir, item), item.sha256)


def _restore_origins(prefix: Path, fetched: Sequence[Fetched[LockedPackage]]) -> None:
    """Point each conda-meta record back at the URL and channel the lock names.

    Only records that differ are rewritten (a ``file://`` package was linked from its own
    URL), and without indentation: the json module's C encoder does not indent, and the
    pure-Python one took 5 s for the 40,000 file entries of a PyTorch CUDA environment.
    """
    by_file = {item.package.filename: item.package for item in fetched}
    for meta in (prefix / "conda-meta").glob("*.json"):
        record = json.loads(meta.read_text())
        package = by_file.get(record.get("fn", ""))
        if package is None or (record.get("url"), record.get("channel")) == (
            package.url,
            package.channel,
        ):
            continue
        record["url"] = package.url
        record["channel"] = package.channel
        meta.write_text(json.dumps(record, sort_keys=True))
