"""What Python distributions a prefix holds: ``site-packages/*.dist-info`` (standard library only).

The installed-packages format (https://packaging.python.org/en/latest/specifications/
recording-installed-packages/) is what pip, uv and ``importlib.metadata`` read: a
``<name>-<version>.dist-info`` directory with ``METADATA`` (``Name``, ``Version``), ``RECORD``
and ``INSTALLER`` (the tool that installed it; setup-tool writes ``setup-tool``), and, for a
package installed from a URL, ``direct_url.json`` (PEP 610: the URL and the archive's sha256).

Used by the installer (the plan, the no-op check) and by the doctor's drift check, so it
imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

INSTALLER_NAME = "setup-tool"
_SEPARATORS = re.compile(r"[-_.]+")


def canonical(name: str) -> str:
    """PEP 503 normalised name (what ``packaging.utils.canonicalize_name`` returns)."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class InstalledDist:
    """One installed distribution, as its ``.dist-info`` says."""

    name: str  # as METADATA spells it
    version: str
    installer: str  # INSTALLER's first line; "" when there is none
    sha256: str | None  # of the wheel, from direct_url.json; None when not recorded
    dist_info: str  # the directory's name
    has_record: bool

    @property
    def key(self) -> str:
        return canonical(self.name)

    @property
    def ours(self) -> bool:
        return self.installer == INSTALLER_NAME


def dist_info_names(site_packages: Path) -> list[str]:
    """The names of the ``*.dist-info`` directories, sorted (cheap: one directory listing)."""
    try:
        with os.scandir(site_packages) as entries:
            return sorted(e.name for e in entries if e.name.endswith(".dist-info"))
    except OSError:
        return []


def installed_dists(site_packages: Path) -> dict[str, InstalledDist]:
    """Canonical name → distribution, for every readable ``*.dist-info`` in ``site_packages``."""
    found = {}
    for name in dist_info_names(site_packages):
        dist = read_dist_info(site_packages / name)
        if dist is not None:
            found[dist.key] = dist
    return found


def read_dist_info(path: Path) -> InstalledDist | None:
    try:
        headers = HeaderParser().parsestr((path / "METADATA").read_text(errors="replace"))
    except OSError:
        return None  # not a complete installation: counts as not installed
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    installer = ""
    with contextlib.suppress(OSError, IndexError):
        installer = (path / "INSTALLER").read_text().splitlines()[0].strip()
    return InstalledDist(
        name=name,
        version=version,
        installer=installer,
        sha256=_archive_sha256(path / "direct_url.json"),
        dist_info=path.name,
        has_record=(path / "RECORD").is_file(),
    )


def direct_url(url: str, sha256: str) -> bytes:
    """``direct_url.json`` for a wheel installed from ``url`` (PEP 610, ``archive_info``)."""
    info = {"url": url, "archive_info": {"hash": f"sha256={sha256}", "hashes": {"sha256": sha256}}}
    return (json.dumps(info, sort_keys=True) + "\n").encode()


def _archive_sha256(path: Path) -> str | None:
    try:
        info = json.loads(path.read_text())
        value = info["archive_info"]["hashes"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def conda_owned(prefix: Path) -> set[str]:
    """The ``.dist-info`` directory names that conda packages installed (their
    ``conda-meta/*.json`` ``files``): those are conda's to manage, not pip's."""
    owned: set[str] = set()
    for meta in (prefix / "conda-meta").glob("*.json"):
        try:
            files = json.loads(meta.read_text()).get("files", [])
        except (OSError, ValueError, AttributeError):
            continue
        for path in files if isinstance(files, list) else []:
            parts = str(path).split("/")
            owned.update(part for part in parts[:-1] if part.endswith(".dist-info"))
    return owned


def pip_installed(prefix: Path, site_packages: Path) -> dict[str, InstalledDist]:
    """The distributions in ``site_packages`` that no conda package owns (by canonical name)."""
    owned = conda_owned(prefix)
    return {
        key: dist
        for key, dist in installed_dists(site_packages).items()
        if dist.dist_info not in owned
    }


def find_site_packages(prefix: Path) -> Path | None:
    """``lib/python3.X[t]/site-packages`` (or Windows ``Lib/site-packages``) of a prefix."""
    candidates = sorted(prefix.glob("lib/python3.*/site-packages")) or sorted(
        prefix.glob("Lib/site-packages")
    )
    return candidates[-1] if candidates else None
