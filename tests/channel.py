"""A local conda channel that mimics conda-forge's PyTorch packaging, for tests of lock and install.

Tests never reach conda-forge (they must pass on machines without network access to it), so
the real solver and installer run against this one. It owns three things:

- ``conda_forge_like()``: the package list, modelled on conda-forge's recipes (sources below);
- ``build_channel(root)``: real, installable packages (``.conda`` and ``.tar.bz2``, each with
  ``info/index.json``, ``info/paths.json`` and a small payload), indexed with py-rattler;
- ``serve_channel(root)``: the same directory over ``http://127.0.0.1:<port>`` (a threaded
  ``http.server`` whose repodata carries a content ``ETag``, see ``ChannelHandler``), for
  tests that need the HTTP transport and its hash checks.

What it mimics (pytorch-cpu-feedstock ``recipe/meta.yaml`` 2.13, torchvision-feedstock
``recipe/recipe.yaml``, cuda-version-feedstock ``recipe/meta.yaml``):

- ``pytorch`` builds ``cuda129_<blas>_py<XY>_h<hash>_<N>``, ``cuda130_…`` and ``cpu_<blas>_…``,
  with conda-forge's build-number offsets (+200 for CUDA, +100 for MKL), so a solver that sees
  ``__cuda`` prefers a CUDA build. CUDA builds depend on ``__cuda`` and on
  ``cuda-version >=X.Y,<X+1``; every build has the ``run_constrained`` that excludes the other
  kind's metapackage (``pytorch-gpu <0.0a0`` on CPU builds, ``pytorch-cpu <0.0a0`` on CUDA ones).
  linux-64 builds use MKL, linux-aarch64 and osx-arm64 builds are ``generic`` (the one
  simplification: conda-forge also has generic builds on linux-64).
- ``cuda-version`` (noarch: generic) constrains ``__cuda >=<major>`` and ``cudatoolkit``.
- ``pytorch-gpu`` / ``pytorch-cpu`` metapackages pin the matching pytorch build exactly.
- ``torchvision`` builds ``cuda129_py312_h<hash>_1`` / ``cpu_py312_…`` pin pytorch ``x.y`` and
  its build kind (``pytorch * cuda*``), and ``cuda-version`` for CUDA builds.
- ``python`` 3.12 and 3.13 (so a ``python=3.12`` pin matters), ``python_abi``, ``numpy``,
  ``matplotlib-base``, and two ``noarch: python`` packages (``filelock``, ``typing_extensions``).
- Linux packages need ``__glibc >=2.17`` (pytorch ``>=2.28``), osx-arm64 ones ``__osx >=11.0``
  (pytorch ``>=12.0``, conda-forge's deployment target).

Payloads are tiny but real: ``python`` installs ``bin/python3.X`` (a shell script carrying the
conda prefix placeholder, so installs must relocate it; it runs the host's ``python3`` with the
environment's site-packages first), packages install a module under ``site-packages`` whose
``__init__.py`` records name, version and build (``torch.version.cuda`` is set on CUDA builds).
Everything is byte-reproducible: fixed timestamps, sorted entries, deterministic compression.
"""

from __future__ import annotations

import asyncio
import bz2
import functools
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO

# 2026-01-01T00:00:00Z in milliseconds: every package gets the same build time, so rebuilding
# the channel gives byte-identical files and repodata.
TIMESTAMP_MS = 1_767_225_600_000
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"

SUBDIRS = ("linux-64", "linux-aarch64", "osx-arm64")
PYTHONS = {"3.12": "3.12.12", "3.13": "3.13.9"}
# pytorch version → (torchvision version, the recipe's base build number)
PYTORCH_RELEASES = {"2.12.1": ("0.27.1", 0), "2.13.0": ("0.28.0", 2)}
CUDA_BUILDS = ("12.9", "13.0")
BLAS = {"linux-64": "mkl", "linux-aarch64": "generic", "osx-arm64": "generic"}
GLIBC_MIN = "2.17"
PYTORCH_GLIBC_MIN = "2.28"
OSX_MIN = "11.0"
PYTORCH_OSX_MIN = "12.0"


@dataclass(frozen=True)
class PackageSpec:
    """One package to build. ``files`` maps payload paths to text; ``subdir`` is ``noarch`` too."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    noarch: str | None = None  # "python" or "generic"
    files: tuple[tuple[str, str], ...] = ()
    executables: frozenset[str] = frozenset()
    prefix_files: frozenset[str] = frozenset()  # payload files holding PREFIX_PLACEHOLDER
    fmt: str = ".conda"  # or ".tar.bz2"

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def filename(self) -> str:
        return self.stem + self.fmt

    def index_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": list(self.depends),
            "constrains": list(self.constrains),
            "license": "BSD-3-Clause",
            "subdir": self.subdir,
            "timestamp": TIMESTAMP_MS,
        }
        if self.subdir != "noarch":
            platform, _, arch = self.subdir.partition("-")
            data["platform"] = platform
            data["arch"] = {"64": "x86_64"}.get(arch, arch)
        if self.noarch:
            data["noarch"] = self.noarch
        return data


@dataclass(frozen=True)
class BuiltPackage:
    """A package file in the channel, with the hashes a lockfile records for it."""

    spec: PackageSpec
    path: Path
    sha256: str
    md5: str
    size: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def build(self) -> str:
        return self.spec.build

    @property
    def subdir(self) -> str:
        return self.spec.subdir

    @property
    def filename(self) -> str:
        return self.spec.filename


@dataclass(frozen=True)
class LocalChannel:
    """A built, indexed channel directory. ``url`` is its ``file://`` URL."""

    root: Path
    packages: tuple[BuiltPackage, ...] = field(repr=False)

    @property
    def url(self) -> str:
        return self.root.resolve().as_uri()

    def find(self, name: str, subdir: str | None = None, build: str = "") -> list[BuiltPackage]:
        """Packages called ``name`` (in ``subdir``, with ``build`` in their build string)."""
        return [
            p
            for p in self.packages
            if p.name == name and (subdir is None or p.subdir == subdir) and build in p.build
        ]

    def copy_to(self, dest: Path) -> LocalChannel:
        """A copy of the channel at ``dest``, e.g. to tamper with a package or add a release."""
        shutil.copytree(self.root, dest)
        return LocalChannel(
            dest,
            tuple(replace(p, path=dest / p.path.relative_to(self.root)) for p in self.packages),
        )

    def add(self, specs: Sequence[PackageSpec]) -> LocalChannel:
        """Build more packages into this channel (a new release, say) and re-index it."""
        built = tuple(_build_package(self.root, spec) for spec in specs)
        index_channel(self.root)
        return LocalChannel(self.root, self.packages + built)


# --- The package list ---------------------------------------------------------------------------


def _hash(*parts: str) -> str:
    """conda-build's ``h<7 hex>`` build-string hash, derived from the variant (stable)."""
    return "h" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:7]


def _py_pins(py: str) -> tuple[str, ...]:
    major, minor = py.split(".")
    tag = f"{major}{minor}"
    return (f"python >={py},<{major}.{int(minor) + 1}.0a0", f"python_abi {py}.* *_cp{tag}")


def _system_dep(subdir: str, *, glibc: str = GLIBC_MIN, osx: str = OSX_MIN) -> tuple[str, ...]:
    if subdir.startswith("linux"):
        return (f"__glibc >={glibc},<3.0.a0",)
    if subdir.startswith("osx"):
        return (f"__osx >={osx}",)
    return ()


def _module(name: str, version: str, build: str, extra: str = "") -> str:
    return (
        f'"""Stand-in for {name} {version} ({build}) from setup-tool\'s test channel."""\n\n'
        f'__version__ = "{version}"\n__build__ = "{build}"\n{extra}'
    )


def _python(subdir: str, py: str) -> list[PackageSpec]:
    full = PYTHONS[py]
    tag = py.replace(".", "")
    build = f"{_hash('python', full, subdir)}_0_cpython"
    interpreter = (
        "#!/bin/sh\n"
        f"# Stand-in for CPython {full} ({build}) from setup-tool's test channel: runs the\n"
        "# host's python3 with this environment's site-packages first on the path.\n"
        f'prefix="{PREFIX_PLACEHOLDER}"\n'
        f'PYTHONPATH="$prefix/lib/python{py}/site-packages${{PYTHONPATH:+:$PYTHONPATH}}" '
        'exec python3 "$@"\n'
    )
    bins = (f"bin/python{py}", "bin/python3", "bin/python")
    return [
        PackageSpec(
            "python",
            full,
            build,
            0,
            subdir,
            depends=_system_dep(subdir),
            constrains=(f"python_abi {py}.* *_cp{tag}",),
            files=tuple((path, interpreter) for path in bins),
            executables=frozenset(bins),
            prefix_files=frozenset(bins),
        ),
        PackageSpec(
            "python_abi",
            py,
            f"8_cp{tag}",
            8,
            subdir,
            constrains=(f"python {py}.* *_cpython",),
            fmt=".tar.bz2",
        ),
    ]


def _site(py: str, module: str) -> str:
    return f"lib/python{py}/site-packages/{module}/__init__.py"


def _python_libraries(subdir: str, py: str) -> list[PackageSpec]:
    tag = py.replace(".", "")
    specs = []
    for name, version, module, extra_deps in (
        ("numpy", "2.3.5", "numpy", ()),
        ("matplotlib-base", "3.10.8", "matplotlib", ("numpy >=1.23",)),
    ):
        build = f"py{tag}{_hash(name, version, subdir, py)}_0"
        specs.append(
            PackageSpec(
                name,
                version,
                build,
                0,
                subdir,
                depends=(*_py_pins(py), *extra_deps, *_system_dep(subdir)),
                files=((_site(py, module), _module(name, version, build)),),
            )
        )
    return specs


def _pytorch(subdir: str, py: str, version: str, base_build: int) -> list[PackageSpec]:
    tag = py.replace(".", "")
    blas = BLAS[subdir]
    kinds: list[str | None] = [None]  # None: the CPU build
    if subdir.startswith("linux"):
        kinds = [*CUDA_BUILDS, None]
    specs = []
    for cuda in kinds:
        number = base_build + (200 if cuda else 0) + (100 if blas == "mkl" else 0)
        prefix = f"cuda{cuda.replace('.', '')}" if cuda else "cpu"
        build = f"{prefix}_{blas}_py{tag}_{_hash('pytorch', version, subdir, py, prefix)}_{number}"
        depends = [
            *_py_pins(py),
            "filelock",
            "typing_extensions >=4.10.0",
            *_system_dep(subdir, glibc=PYTORCH_GLIBC_MIN, osx=PYTORCH_OSX_MIN),
        ]
        if cuda:
            major = int(cuda.split(".")[0])
            depends += ["__cuda", f"cuda-version >={cuda},<{major + 1}"]
            constrains = (f"pytorch-gpu {version}", "pytorch-cpu <0.0a0")
        else:
            constrains = (f"pytorch-cpu {version}", "pytorch-gpu <0.0a0")
        cuda_attr = f'"{cuda}"' if cuda else "None"
        module = _module("pytorch", version, build, f"\n\nclass version:\n    cuda = {cuda_attr}\n")
        specs.append(
            PackageSpec(
                "pytorch",
                version,
                build,
                number,
                subdir,
                depends=tuple(depends),
                constrains=constrains,
                files=((_site(py, "torch"), module),),
            )
        )
    return specs


def _pytorch_metapackages(subdir: str, version: str, base_build: int) -> list[PackageSpec]:
    blas = BLAS[subdir]
    kinds: list[str | None] = [None]
    if subdir.startswith("linux"):
        kinds = [*CUDA_BUILDS, None]
    specs = []
    for cuda in kinds:
        number = base_build + (200 if cuda else 0) + (100 if blas == "mkl" else 0)
        prefix = f"cuda{cuda.replace('.', '')}" if cuda else "cpu"
        name = "pytorch-gpu" if cuda else "pytorch-cpu"
        build = f"{prefix}_{blas}_{_hash(name, version, subdir, prefix)}_{number}"
        pin = (
            f"pytorch {version} cuda*_{blas}*{number}"
            if cuda
            else f"pytorch {version} cpu_{blas}*{number}"
        )
        specs.append(PackageSpec(name, version, build, number, subdir, depends=(pin,)))
    return specs


def _torchvision(subdir: str, py: str, version: str, torch_version: str) -> list[PackageSpec]:
    tag = py.replace(".", "")
    major, minor, _ = torch_version.split(".")
    kinds: list[str | None] = [None]
    if subdir.startswith("linux"):
        kinds = [*CUDA_BUILDS, None]
    specs = []
    for cuda in kinds:
        prefix = f"cuda{cuda.replace('.', '')}" if cuda else "cpu"
        build = f"{prefix}_py{tag}_{_hash('torchvision', version, subdir, py, prefix)}_1"
        depends = [
            *_py_pins(py),
            "numpy >=1.23,<3",
            f"pytorch >={major}.{minor},<{major}.{int(minor) + 1}.0a0",
            "pytorch * cuda*" if cuda else "pytorch * cpu*",
            *_system_dep(subdir),
        ]
        if cuda:
            cuda_major = int(cuda.split(".")[0])
            depends.append(f"cuda-version >={cuda},<{cuda_major + 1}")
        specs.append(
            PackageSpec(
                "torchvision",
                version,
                build,
                1,
                subdir,
                depends=tuple(depends),
                files=((_site(py, "torchvision"), _module("torchvision", version, build)),),
            )
        )
    return specs


def _noarch() -> list[PackageSpec]:
    specs = [
        PackageSpec(
            "cuda-version",
            cuda,
            f"{_hash('cuda-version', cuda)}_3",
            3,
            "noarch",
            constrains=(f"__cuda >={cuda.split('.')[0]}", f"cudatoolkit {cuda}|{cuda}.*"),
            noarch="generic",
            fmt=".tar.bz2",
        )
        for cuda in CUDA_BUILDS
    ]
    for name, version, path in (
        ("filelock", "3.20.0", "site-packages/filelock/__init__.py"),
        ("typing_extensions", "4.15.0", "site-packages/typing_extensions.py"),
    ):
        specs.append(
            PackageSpec(
                name,
                version,
                "pyhd8ed1ab_0",
                0,
                "noarch",
                depends=("python >=3.9",),
                noarch="python",
                files=((path, _module(name, version, "pyhd8ed1ab_0")),),
                fmt=".tar.bz2",
            )
        )
    return specs


def conda_forge_like() -> list[PackageSpec]:
    """Every package of the test channel (see the module docstring for what each mimics)."""
    specs = _noarch()
    for subdir in SUBDIRS:
        for py in PYTHONS:
            specs += _python(subdir, py)
            specs += _python_libraries(subdir, py)
            for version, (vision, base_build) in PYTORCH_RELEASES.items():
                specs += _pytorch(subdir, py, version, base_build)
                specs += _torchvision(subdir, py, vision, version)
        for version, (_, base_build) in PYTORCH_RELEASES.items():
            specs += _pytorch_metapackages(subdir, version, base_build)
    return specs


# --- Building and indexing ----------------------------------------------------------------------


def _tar(members: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A reproducible tar archive (fixed mtime and owner, given order)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = TIMESTAMP_MS // 1000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


Member = tuple[str, bytes, int]  # name, data, mode


def _info_members(spec: PackageSpec, payload: list[Member]) -> list[Member]:
    paths = []
    for path, data, _ in payload:
        entry: dict[str, object] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if path in spec.prefix_files:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = PREFIX_PLACEHOLDER
        paths.append(entry)
    info: dict[str, object] = {
        "info/index.json": spec.index_json(),
        "info/paths.json": {"paths": paths, "paths_version": 1},
        "info/about.json": {
            "summary": f"{spec.name} as setup-tool's test channel packages it",
            "license": "BSD-3-Clause",
        },
    }
    if spec.noarch == "python":
        info["info/link.json"] = {"noarch": {"type": "python"}, "package_metadata_version": 1}
    members = [
        (name, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), 0o644)
        for name, value in info.items()
    ]
    members.append(("info/files", "".join(f"{p}\n" for p, _, _ in payload).encode(), 0o644))
    if spec.prefix_files:
        lines = "".join(f"{PREFIX_PLACEHOLDER} text {p}\n" for p in sorted(spec.prefix_files))
        members.append(("info/has_prefix", lines.encode(), 0o644))
    return sorted(members)


def _build_package(root: Path, spec: PackageSpec) -> BuiltPackage:
    payload = sorted(
        (path, text.encode(), 0o755 if path in spec.executables else 0o644)
        for path, text in spec.files
    )
    info = _info_members(spec, payload)
    out_dir = root / spec.subdir
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.filename
    if spec.fmt == ".tar.bz2":
        data = bz2.compress(_tar(info + payload), 9)
    elif spec.fmt == ".conda":
        data = _conda_archive(spec.stem, info, payload)
    else:
        raise ValueError(f"unknown package format {spec.fmt!r}")
    path.write_bytes(data)
    return BuiltPackage(
        spec,
        path,
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
    )


def _conda_archive(stem: str, info: list[Member], payload: list[Member]) -> bytes:
    """The ``.conda`` format: an uncompressed zip of metadata.json and two ``.tar.zst`` parts.

    Written directly (rather than with conda-package-handling's ``transmute``) so the bytes
    are reproducible; conda-package-handling and py-rattler both read it.
    """
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in (
            ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
            (f"pkg-{stem}.tar.zst", compressor.compress(_tar(payload))),
            (f"info-{stem}.tar.zst", compressor.compress(_tar(info))),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def index_channel(root: Path) -> None:
    """Write ``repodata.json`` for every subdir with py-rattler's indexer (plain JSON only)."""
    from rattler.index import index_fs

    # An empty noarch/ keeps solvers happy even when a channel has no noarch packages.
    (root / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))


def build_channel(root: Path, specs: Sequence[PackageSpec] | None = None) -> LocalChannel:
    """Build ``specs`` (default: ``conda_forge_like()``) into ``root`` and index it."""
    root.mkdir(parents=True, exist_ok=True)
    packages = tuple(_build_package(root, spec) for spec in (specs or conda_forge_like()))
    index_channel(root)
    return LocalChannel(root, packages)


# --- Serving over HTTP --------------------------------------------------------------------------


class ChannelHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a channel directory quietly, with a strong validator for repodata.

    ``SimpleHTTPRequestHandler`` answers ``If-Modified-Since`` from the file's mtime in whole
    seconds, so a ``repodata.json`` rewritten within the second it was first fetched gets
    "304 Not Modified" and a client keeps the old index (a relock then misses the new
    release). conda-forge's servers send an ``ETag``, and py-rattler revalidates with
    ``If-None-Match`` when it has one: do the same, with the content's sha256 as the tag,
    and ignore ``If-Modified-Since``, so "not modified" means the bytes are the same.
    """

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        del self.headers["If-Modified-Since"]
        path = Path(self.translate_path(self.path))
        if not path.name.startswith("repodata") or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.end_headers()
        return io.BytesIO(data)


@contextmanager
def serve_channel(
    root: Path, handler_class: type[http.server.SimpleHTTPRequestHandler] = ChannelHandler
) -> Iterator[str]:
    """Serve ``root`` on ``http://127.0.0.1:<free port>``; yields the channel URL."""
    handler = functools.partial(handler_class, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-channel", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
