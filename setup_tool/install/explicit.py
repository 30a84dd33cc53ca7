"""Reading explicit lockfiles: ``@EXPLICIT`` followed by one package URL per line.

Three tools write them, all in the same layout (conda's ``conda.misc.explicit`` reads it):

- ``conda list --explicit --md5`` (``url#<md5>``; ``--sha256`` writes ``url#sha256:<hex>``);
- ``conda-lock render --kind explicit`` and conda-lock's ``conda-<platform>.lock`` files
  (``# platform: linux-64``, ``# input_hash: ...``, then ``url#<md5>``; conda-lock's
  ``conda_lock.py``, ``_render_lockfile_for_install``).

Such a file holds **one platform** (its ``# platform:`` header, else the subdir in its URLs),
no dependencies and no categories. Each package is verified by the hash in its URL fragment:
sha256 when the file has it, else md5 (all that ``conda list --explicit --md5`` and conda-lock
record), and a package without any hash is refused unless the caller allows unverified ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from setup_tool.errors import LockfileInvalid, LockfileMismatch, UsageError
from setup_tool.install.lockread import (
    EXPLICIT,
    LockedPackage,
    LockedPlatform,
    md5_only_warning,
)

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_SHA256 = re.compile(r"sha256:([0-9a-fA-F]{64})")
_PLATFORM = re.compile(r"#\s*platform:\s*(\S+)")
_INPUT_HASH = re.compile(r"#\s*input_hash:\s*(\S+)")
_ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")
MARKER = "@EXPLICIT"


@dataclass(frozen=True)
class _Line:
    number: int
    url: str
    fragment: str


def read_explicit(
    path: Path,
    data: bytes,
    platform: str,
    categories: Iterable[str] = ("main",),
    *,
    allow_unverified: bool = False,
) -> LockedPlatform:
    """The packages of the explicit lockfile ``path`` (bytes ``data``) for this ``platform``."""
    extra = sorted(set(categories) - {"main"})
    if extra:
        raise UsageError(
            f"{path} is an explicit lockfile, which has no categories (asked for: "
            f"{', '.join(extra)})",
            "drop --category: an explicit lockfile installs all of its packages",
        )
    text = data.decode("utf-8", errors="replace")
    header_platform, input_hash, lines, pip = _split(path, text)
    if pip:
        raise LockfileInvalid(
            f"{path} has pip packages ({', '.join(pip[:5])}) as `# pip` comments, which conda "
            f"and micromamba skip, and which setup-tool does not install from an explicit "
            f"lockfile",
            "install from the conda-lock file it was rendered from (`--lockfile "
            "conda-lock.yml`): setup-tool installs its pip packages too, each verified",
        )
    packages = tuple(_package(path, line, header_platform or platform) for line in lines)
    file_platform = header_platform or _platform_from_urls(path, packages) or platform
    if file_platform != platform:
        fix = (
            f"use the explicit lockfile made for {platform} (conda-lock writes one per "
            f"platform: `conda-lock render --kind explicit -p {platform}`)"
        )
        raise LockfileMismatch(
            f"{path} is an explicit lockfile for {file_platform}, and this machine is {platform}",
            fix,
            reasons=(
                {"kind": "platform", "reason": f"the file is for {file_platform}", "fix": fix},
            ),
        )
    if not packages:
        raise LockfileInvalid(f"{path} lists no packages after {MARKER}", "regenerate it")
    unverified = [p.name for p in packages if p.hash_kind is None]
    if unverified and not allow_unverified:
        raise _unverified(path, unverified, len(packages))
    return LockedPlatform(
        path=path,
        platform=platform,
        packages=packages,
        platforms_in_lock=(file_platform,),
        content_hash=input_hash,
        file_sha256=hashlib.sha256(data).hexdigest(),
        source_format=EXPLICIT,
        warnings=_warnings(packages, unverified),
    )


def _unverified(path: Path, names: list[str], total: int) -> LockfileInvalid:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return LockfileInvalid(
        f"{path}: {len(names)} of {total} packages have no hash (#<md5> or #sha256:<hex> after "
        f"the URL), so they cannot be verified: {shown}",
        "regenerate it with hashes (`conda list --explicit --md5`, or `conda-lock render "
        "--kind explicit`), or pass --allow-unverified to install them unchecked",
    )


def _split(path: Path, text: str) -> tuple[str | None, str | None, list[_Line], list[str]]:
    """(platform header, input hash, package lines, pip requirement names)."""
    header_platform = input_hash = None
    lines: list[_Line] = []
    pip: list[str] = []
    seen_marker = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if match := _PLATFORM.match(line):
                header_platform = match.group(1)
            elif match := _INPUT_HASH.match(line):
                input_hash = match.group(1)
            elif line.startswith("# pip "):  # conda-lock renders pip packages as comments
                pip.append(line.removeprefix("# pip ").split()[0])
            continue
        if line == MARKER:
            seen_marker = True
            continue
        if not seen_marker:
            raise LockfileInvalid(
                f"{path}:{number}: {line[:60]!r} comes before the {MARKER} line",
                "an explicit lockfile starts with comments, then @EXPLICIT, then URLs",
            )
        url, _, fragment = line.partition("#")
        lines.append(_Line(number, url.strip(), fragment.strip()))
    return header_platform, input_hash, lines, pip


def _package(path: Path, line: _Line, platform: str) -> LockedPackage:
    parts = urlsplit(line.url)
    filename = unquote(PurePosixPath(parts.path).name)
    stem = next((filename[: -len(s)] for s in _ARCHIVE_SUFFIXES if filename.endswith(s)), None)
    pieces = stem.rsplit("-", 2) if stem else []
    if parts.scheme not in {"http", "https", "file"} or len(pieces) != 3:
        raise LockfileInvalid(
            f"{path}:{line.number}: {line.url[:80]!r} is not a conda package URL "
            f"(<channel>/<subdir>/<name>-<version>-<build>.conda or .tar.bz2)",
            "regenerate the file (`conda list --explicit --md5`)",
        )
    sha256 = md5 = ""
    if match := _SHA256.fullmatch(line.fragment):
        sha256 = match.group(1).lower()
    elif _MD5.fullmatch(line.fragment):
        md5 = line.fragment.lower()
    elif line.fragment:
        raise LockfileInvalid(
            f"{path}:{line.number}: {filename} has the fragment #{line.fragment[:70]}, which "
            f"is neither an md5 (32 hex digits) nor sha256:<64 hex digits>",
            "restore the file from where it came from, or regenerate it",
        )
    name, version, build = pieces
    return LockedPackage(
        name=name,
        version=version,
        build=build,
        url=line.url,
        sha256=sha256,
        md5=md5,
        platform=platform,
    )


def _platform_from_urls(path: Path, packages: tuple[LockedPackage, ...]) -> str | None:
    """The platform of a file without a ``# platform:`` header: its packages' subdir (None
    when every package is noarch, which installs anywhere)."""
    subdirs = sorted({p.subdir for p in packages if p.subdir != "noarch"})
    if len(subdirs) == 1:
        return subdirs[0]
    if not subdirs:
        return None
    raise LockfileInvalid(
        f"{path} has no `# platform:` line and its packages come from several platforms "
        f"({', '.join(subdirs)})",
        "an explicit lockfile holds one platform: regenerate it for one",
    )


def _warnings(packages: tuple[LockedPackage, ...], unverified: list[str]) -> tuple[str, ...]:
    warnings = []
    md5_only = sorted(p.name for p in packages if p.hash_kind == "md5")
    if md5_only:
        warnings.append(md5_only_warning(md5_only))
    if unverified:
        warnings.append(
            f"{len(unverified)} package(s) have no hash and are installed unverified "
            f"(--allow-unverified): {', '.join(unverified[:5])}"
            + (f" and {len(unverified) - 5} more" if len(unverified) > 5 else "")
        )
    return tuple(warnings)
