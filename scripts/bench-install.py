#!/usr/bin/env python3
"""Install at real scale: setup-tool against the engine it runs on, on a PyTorch CUDA channel.

Builds a local conda channel shaped like a real conda-forge PyTorch CUDA environment, then
measures, in one run and side by side, each ``--runs`` times (median):

1. a raw py-rattler ``install()`` of the same records into a fresh prefix (the engine alone,
   what pixi does), cold and warm package cache;
2. ``setup-tool install``, cold cache (new prefix);
3. ``setup-tool install``, warm cache, new prefix;
4. a no-op ``setup-tool install`` (the same lock again);
5. an upgrade that changes 3 large packages (new builds of the 3 largest);
6. ``setup-tool install --dry-run`` (new prefix, empty cache);
7. the peak RSS of each (``wait4``'s ``ru_maxrss`` of that process alone),

over ``file://`` and over ``http://127.0.0.1`` (a threaded server using ``sendfile``).

The channel: the package names, versions, builds and dependencies of a real lock (by default
the linux-64 lock of pangeo-data/pangeo-docker-images ``pytorch-notebook/conda-lock.yml``,
commit 2f5532b, 885 packages), cut to the dependency closure of ``--roots`` (default: PyTorch,
torchvision, Lightning, Jupyter and the scientific stack: 378 packages). A lock has no sizes,
so each archive's size comes from ``SIZES_MB`` (the CUDA libraries that make a PyTorch
environment big, estimated from conda-forge's linux-64 CUDA 12.9 builds) or, for every other
package, from a log-normal draw keyed by its name (median 0.35 MB, as most conda-forge
packages are small); file counts follow ``FILES``. Payloads are pseudo-random bytes (no two
blocks alike), so zstd cannot shrink them and hashing, decompression and copying cost what
they do for real. ``docs/PERFORMANCE.md`` has the table this prints, and how to read it.

    .venv/bin/python scripts/bench-install.py [--work /tmp/setup-tool-bench] [--runs 3]

The channel (~3 GB) stays in ``--work`` for the next run (delete it with ``--clean``); caches
and prefixes are deleted after each measurement. ``--scale`` and ``--roots`` make a small
channel (the test suite runs one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import http.server
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = (
    REPO.parent / "shared/realworld-locks/pangeo-data-pangeo-docker-images-pytorch-notebook"
    ".conda-lock.yml"
)
DEFAULT_ROOTS = [
    *("pytorch", "torchvision", "pytorch-lightning", "torchmetrics", "jupyterlab", "ipywidgets"),
    *("pandas", "matplotlib", "seaborn", "scikit-learn", "scikit-image", "xarray", "dask"),
    *("zarr", "netcdf4"),
]
PLATFORM = "linux-64"
MB = 1 << 20

# Archive sizes (MB, .conda) of the packages that make a PyTorch CUDA environment big:
# estimates for conda-forge's linux-64 builds for CUDA 12.9 (libtorch/pytorch 2.10, cuDNN 9,
# cuBLAS 12.9, NCCL 2.29). Exactness does not matter; the shape does: a handful of 0.2-0.7 GB
# archives carry most of the ~3 GB, hundreds of small ones make up the count.
SIZES_MB = {
    "libtorch": 650, "libcudnn": 450, "libcublas": 380, "libmagma": 200, "nccl": 180,
    "libcusparse": 170, "libcusolver": 160, "libcufft": 150, "mkl": 120, "triton": 110,
    "libcudss": 75, "cuda-nvrtc": 60, "libcurand": 42, "libnvjitlink": 28, "python": 31,
    "cuda-nvcc-tools": 26, "pytorch": 26, "libgoogle-cloud": 20, "cuda-nvvm-tools": 18,
    "scipy": 17, "pandas": 15, "cuda-cupti": 14, "icu": 12, "statsmodels": 12, "libarrow": 10,
    "scikit-image": 10, "scikit-learn": 9, "libgrpc": 9, "ucx": 9, "numpy": 8,
    "matplotlib-base": 8, "torchvision": 7, "mpich": 6, "pyarrow-core": 5, "cuda-nvdisasm": 5,
    "sympy": 4.5, "libstdcxx": 4, "hdf5": 4, "aws-sdk-cpp": 3.5, "tk": 3.3, "openssl": 3.1,
    "llvm-openmp": 3.2, "libnvjpeg": 3, "jupyterlab": 7, "debugpy": 2.5,
}  # fmt: skip
# File counts where they are far from the default (headers, stdlib, big Python packages).
FILES = {
    "libtorch": 9000, "pytorch": 3000, "python": 3200, "pandas": 1900, "sympy": 1600,
    "scipy": 1300, "statsmodels": 1300, "numpy": 1100, "scikit-learn": 1100, "pyarrow-core": 1000,
    "scikit-image": 900, "matplotlib-base": 900, "triton": 900, "jupyterlab": 800, "debugpy": 700,
}  # fmt: skip
UPGRADED = 3  # the upgrade scenario rebuilds this many of the largest packages


# --- The model: which packages, how big -----------------------------------------------------


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    build: str
    subdir: str
    noarch: str | None
    depends: tuple[tuple[str, str], ...]  # (name, spec) as the lock lists them
    size: int  # target archive size in bytes
    files: int
    seed: int

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def filename(self) -> str:
        return f"{self.stem}.conda"

    @property
    def build_number(self) -> int:
        tail = self.build.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0


@dataclass(frozen=True)
class Built:
    package: Package
    path: Path
    sha256: str
    md5: str


def _name_seed(name: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}{name}".encode()).digest()[:8], "little")


def _default_size_mb(name: str) -> float:
    """Log-normal, median 0.35 MB, clipped to 20 KB .. 15 MB; the same for the same name."""
    uniform = (_name_seed(name, "size") % 10_000 + 0.5) / 10_000
    normal = math.sqrt(2) * _erfinv(2 * uniform - 1)
    return min(15.0, max(0.02, 0.35 * math.exp(1.3 * normal)))


def _erfinv(y: float) -> float:
    """Inverse error function (Giles' single-precision approximation; enough for a model)."""
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):  # fmt: skip
            p = c + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):  # fmt: skip
            p = c + p * w
    return p * y


def _default_files(package: dict[str, Any], size_mb: float) -> int:
    if "/noarch/" in package["url"]:
        return int(min(800, 8 + size_mb * 60))
    if "python" in package.get("dependencies", {}):
        return int(min(1500, 15 + size_mb * 40))
    return int(min(60, 3 + size_mb * 2))


def read_model(lock: Path, roots: Sequence[str], scale: float) -> list[Package]:
    """The linux-64 packages of ``lock`` in the dependency closure of ``roots``, sized."""
    import yaml

    entries = {
        p["name"]: p
        for p in yaml.safe_load(lock.read_text())["package"]
        if p.get("platform") == PLATFORM and p.get("manager", "conda") == "conda"
    }
    wanted: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in wanted or name not in entries:
            continue
        wanted.add(name)
        stack.extend(entries[name].get("dependencies", {}))
    packages = []
    for name in sorted(wanted):
        entry = entries[name]
        filename = entry["url"].rsplit("/", 1)[1]
        stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
        build = stem[len(f"{name}-{entry['version']}-") :]
        deps = tuple(sorted((d, s) for d, s in entry.get("dependencies", {}).items()))
        noarch = None
        if "/noarch/" in entry["url"]:
            noarch = "python" if any(d == "python" for d, _ in deps) else "generic"
        size_mb = SIZES_MB.get(name) or _default_size_mb(name)
        packages.append(
            Package(
                name=name,
                version=str(entry["version"]),
                build=build,
                subdir="noarch" if noarch else PLATFORM,
                noarch=noarch,
                depends=deps,
                size=max(4096, int(size_mb * MB * scale)),
                # A scaled-down channel has proportionally fewer files (a test's must be quick).
                files=max(
                    2, int((FILES.get(name) or _default_files(entry, size_mb)) * min(1, scale))
                ),
                seed=_name_seed(name),
            )
        )
    return packages


def upgrades(packages: Sequence[Package]) -> dict[str, Package]:
    """New builds (build number + 1, new bytes) of the ``UPGRADED`` largest packages."""
    largest = sorted(packages, key=lambda p: p.size, reverse=True)[:UPGRADED]
    changed = {}
    for package in largest:
        number = package.build_number
        head = package.build[: -len(str(number))] if package.build.endswith(str(number)) else ""
        build = f"{head}{number + 1}" if head else f"{package.build}_1"
        changed[package.name] = replace(package, build=build, seed=package.seed ^ 0x5EED)
    return changed


# --- Writing packages -----------------------------------------------------------------------


class _Noise:
    """Incompressible bytes, fast: a random base block XORed with a per-block constant, so no
    two blocks share a substring an LZ compressor could use. Files take consecutive bytes."""

    BLOCK = 4 * MB

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.np = np
        rng = np.random.default_rng(seed)
        self.base = rng.integers(0, 2**63, self.BLOCK // 8, dtype=np.uint64)
        self.counter = seed
        self.block = b""
        self.offset = 0

    def take(self, nbytes: int) -> Iterator[bytes]:
        while nbytes > 0:
            if self.offset >= len(self.block):
                self.counter += 1
                salt = (self.counter * 0x9E3779B97F4A7C15) & (2**64 - 1)
                self.block = (self.base ^ self.np.uint64(salt)).tobytes()
                self.offset = 0
            part = self.block[self.offset : self.offset + nbytes]
            self.offset += len(part)
            nbytes -= len(part)
            yield part


class _Stream(io.RawIOBase):
    """A file-like view of a byte generator, for ``tarfile.addfile``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


def _payload(package: Package) -> list[tuple[str, int]]:
    """(path, size) of each file: one large file holds most bytes, the rest are 1-16 KiB."""
    if package.noarch == "python":
        top = f"site-packages/{package.name.replace('-', '_')}"
    elif package.name in ("python", "pytorch") or package.files > 500:
        top = f"lib/python3.12/site-packages/{package.name}"
    else:
        top = f"lib/{package.name}"
    small = [
        (f"{top}/f{i:05d}.py", 1024 * (1 + (package.seed + i) % 16))
        for i in range(package.files - 1)
    ]
    rest = max(0, package.size - sum(size for _, size in small))
    big = f"{top}/lib{package.name}.so" if package.noarch is None else f"{top}/data.bin"
    return sorted([*small, (big, rest)])


def _index_json(package: Package) -> dict[str, Any]:
    index: dict[str, Any] = {
        "name": package.name,
        "version": package.version,
        "build": package.build,
        "build_number": package.build_number,
        "depends": [f"{d} {s}".strip() for d, s in package.depends],
        "license": "BSD-3-Clause",
        "subdir": package.subdir,
        "timestamp": 1_767_225_600_000,
    }
    if package.noarch:
        index["noarch"] = package.noarch
    else:
        index.update(platform="linux", arch="x86_64")
    return index


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes | Iterator[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 1_767_225_600
    source = io.BytesIO(data) if isinstance(data, bytes) else io.BufferedReader(_Stream(data))
    tar.addfile(info, source)


def write_package(package: Package, out: Path) -> Built:
    """Stream one ``.conda`` (zip of two ``.tar.zst``) to ``out``; memory stays ~ one block."""
    import zstandard

    noise = _Noise(package.seed)
    entries = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        with (
            archive.open(f"pkg-{package.stem}.tar.zst", "w", force_zip64=True) as member,
            zstandard.ZstdCompressor(level=1).stream_writer(member, closefd=False) as zst,
            tarfile.open(fileobj=zst, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path, size in _payload(package):
                digest = hashlib.sha256()

                def hashed(parts: Iterator[bytes], digest: Any = digest) -> Iterator[bytes]:
                    for part in parts:
                        digest.update(part)
                        yield part

                _tar_member(tar, path, hashed(noise.take(size)), size)
                entries.append(
                    {
                        "_path": path,
                        "path_type": "hardlink",
                        "sha256": digest.hexdigest(),
                        "size_in_bytes": size,
                    }
                )
        info = {
            "info/index.json": _index_json(package),
            "info/paths.json": {"paths": entries, "paths_version": 1},
        }
        if package.noarch == "python":
            info["info/link.json"] = {"noarch": {"type": "python"}, "package_metadata_version": 1}
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, value in sorted(info.items()):
                data = (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()
                _tar_member(tar, name, data, len(data))
        compressed = zstandard.ZstdCompressor(level=3).compress(buffer.getvalue())
        archive.writestr(f"info-{package.stem}.tar.zst", compressed)
    return _built(package, out)


def _built(package: Package, path: Path) -> Built:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(MB):
            sha.update(chunk)
            md5.update(chunk)
    return Built(package, path, sha.hexdigest(), md5.hexdigest())


# --- The channel and its locks --------------------------------------------------------------


@dataclass
class Channel:
    root: Path
    base: list[Built]
    upgraded: dict[str, Built] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.root.resolve().as_uri()

    @property
    def bytes(self) -> int:
        return sum(b.path.stat().st_size for b in self.base)


def build_channel(root: Path, packages: Sequence[Package], log: Any) -> Channel:
    """Build (or reuse, when its stamp matches) the channel: base packages and the upgrades."""
    changed = upgrades(packages)
    stamp = hashlib.sha256(repr((packages, sorted(changed.items()))).encode()).hexdigest()
    stamp_file = root / "bench-stamp.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()).get("stamp") == stamp:
        log(f"reusing the channel in {root}")
        return _load(root, packages, changed)
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    (root / "noarch").mkdir(parents=True)
    for count, package in enumerate([*packages, *changed.values()], 1):
        write_package(package, root / package.subdir / package.filename)
        if count % 50 == 0:
            log(f"  built {count} packages ({time.monotonic() - started:.0f} s)")
    from rattler.index import index_fs

    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    stamp_file.write_text(json.dumps({"stamp": stamp}))
    log(f"built {len(packages) + len(changed)} packages in {time.monotonic() - started:.0f} s")
    return _load(root, packages, changed)


def _load(root: Path, packages: Sequence[Package], changed: dict[str, Package]) -> Channel:
    def built(package: Package) -> Built:
        return _built(package, root / package.subdir / package.filename)

    return Channel(
        root,
        [built(p) for p in packages],
        {name: built(p) for name, p in changed.items()},
    )


def write_lock(path: Path, built: Sequence[Built], channel_url: str) -> Path:
    """A conda-lock v1 file for ``built``, with URLs under ``channel_url``."""
    import yaml

    entries = []
    for item in built:
        package = item.package
        entries.append(
            {
                "name": package.name,
                "version": package.version,
                "manager": "conda",
                "platform": PLATFORM,
                "dependencies": dict(package.depends),
                "url": f"{channel_url}/{package.subdir}/{package.filename}",
                "hash": {"md5": item.md5, "sha256": item.sha256},
                "category": "main",
                "optional": False,
            }
        )
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    lock = {
        "version": 1,
        "metadata": {
            "content_hash": {PLATFORM: digest},
            "channels": [{"url": channel_url, "used_env_vars": []}],
            "platforms": [PLATFORM],
            "sources": ["bench-install.py"],
        },
        "package": entries,
    }
    path.write_text(yaml.safe_dump(lock, sort_keys=False))
    return path


class _SendfileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves package files with ``sendfile`` (as nginx would), quietly."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        outputfile.flush()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.connection.sendfile(source)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    handler = functools.partial(_SendfileHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- Measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss_mb: float
    output: str


# The measured process is started by this small one: a process's peak RSS counts whatever
# its parent had mapped when it forked (vfork + exec keeps the high-water mark), and this
# script holds the channel model and numpy; the spawner is a bare interpreter.
SPAWNER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
output = child.stdout.read().decode(errors="replace")
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
                  "seconds": time.perf_counter() - started, "output": output}))
"""


def measured(argv: Sequence[str], env: dict[str, str]) -> Sample:
    """Wall time and the process's own peak RSS, or an error with its output."""
    done = subprocess.run(
        [sys.executable, "-c", SPAWNER, *argv], env=env, capture_output=True, text=True, check=False
    )
    report = json.loads(done.stdout)
    if report["code"] != 0:
        raise SystemExit(f"{' '.join(argv)} exited {report['code']}:\n{report['output'][-3000:]}")
    return Sample(report["seconds"], report["maxrss_kb"] / 1024, report["output"])


RAW_INSTALL = """
import asyncio, json, os, sys, time
import rattler
channel, prefix, cache, specs_file = sys.argv[1:5]
async def main():
    gateway = rattler.Gateway(cache_dir=os.path.join(cache, "repodata"))
    specs = [rattler.MatchSpec(s) for s in json.load(open(specs_file))]
    found = await gateway.query([rattler.Channel(channel)], ["linux-64", "noarch"], specs,
                                recursive=False)
    records = [r for rs in found for r in rs]
    assert len(records) == len(specs), (len(records), len(specs))
    started = time.perf_counter()
    await rattler.install(records, target_prefix=prefix, cache_dir=os.path.join(cache, "pkgs"),
                          show_progress=False, execute_link_scripts=False,
                          platform=rattler.Subdir("linux-64"))
    print(json.dumps({"install_s": time.perf_counter() - started, "records": len(records)}))
asyncio.run(main())
sys.stdout.flush()
os._exit(0)  # py-rattler's shutdown crash (scripts/repro-rattler-shutdown.py)
"""


@dataclass
class Bench:
    work: Path
    channel: Channel
    env: dict[str, str]
    results: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)

    def record(self, transport: str, what: str, sample: Sample) -> None:
        self.results.setdefault(what, {}).setdefault(transport, []).append(sample)

    def raw(self, channel_url: str, prefix: Path, cache: Path) -> Sample:
        specs = self.work / "specs.json"
        specs.write_text(
            json.dumps(
                [
                    f"{b.package.name} =={b.package.version} {b.package.build}"
                    for b in self.channel.base
                ]
            )
        )
        argv = [sys.executable, "-c", RAW_INSTALL, channel_url, str(prefix), str(cache), str(specs)]
        return measured(argv, self.env)

    def setup_tool(self, lock: Path, prefix: Path, cache: Path, *more: str) -> Sample:
        argv = [sys.executable, "-m", "setup_tool", "install", "--lockfile", str(lock),
                "--prefix", str(prefix), *more]  # fmt: skip
        return measured(argv, {**self.env, "SETUP_TOOL_CACHE": str(cache)})


def one_round(bench: Bench, transport: str, channel_url: str, log: Any) -> None:
    """Every measurement once for one transport; deletes its caches and prefixes after."""
    scratch = bench.work / "run"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    locks = scratch / "locks"
    locks.mkdir()
    base = write_lock(locks / "base.conda-lock.yml", bench.channel.base, channel_url)
    new = [bench.channel.upgraded.get(b.package.name, b) for b in bench.channel.base]
    upgrade = write_lock(locks / "upgrade.conda-lock.yml", new, channel_url)

    def step(what: str, sample: Sample, says: str = "") -> None:
        if says and says not in sample.output:  # the scenario did not do what it is named
            raise SystemExit(f"{transport} {what}: expected {says!r} in:\n{sample.output[-2000:]}")
        bench.record(transport, what, sample)
        log(f"  {transport:5} {what:24} {sample.seconds:7.2f} s  {sample.peak_rss_mb:6.0f} MB")

    step("raw cold", bench.raw(channel_url, scratch / "raw1", scratch / "raw-cache"))
    step("raw warm", bench.raw(channel_url, scratch / "raw2", scratch / "raw-cache"))
    for path in ("raw1", "raw2", "raw-cache"):
        shutil.rmtree(scratch / path)
    cache = scratch / "cache"
    count = len(bench.channel.base)
    cold = f"{count} downloaded, 0 from cache"
    step("setup-tool cold", bench.setup_tool(base, scratch / "env1", cache), cold)
    warm = f"0 downloaded, {count} from cache"
    step("setup-tool warm", bench.setup_tool(base, scratch / "env2", cache), warm)
    verify = bench.setup_tool(base, scratch / "env4", cache, "--verify-cache")
    step("warm, --verify-cache", verify, warm)
    step("no-op", bench.setup_tool(base, scratch / "env2", cache), "is up to date")
    changed = f"{UPGRADED} changed, 0 removed; {UPGRADED} downloaded"
    step("upgrade (3 large)", bench.setup_tool(upgrade, scratch / "env2", cache), changed)
    dry = bench.setup_tool(base, scratch / "env3", scratch / "empty", "--dry-run")
    step("dry-run", dry, f"{count} to add")
    shutil.rmtree(scratch)


# --- Reporting ------------------------------------------------------------------------------

RSS_GOAL_MB = 500
GOALS: dict[str, tuple[str, str | None, float | None]] = {  # → (goal, compared with, limit)
    "setup-tool cold": ("<= 1.2x raw cold", "raw cold", 1.2),
    "setup-tool warm": ("<= 1.3x raw warm", "raw warm", 1.3),
    "warm, --verify-cache": ("(every cached byte hashed: the cost of no stamps)", "raw warm", None),
    "no-op": ("<= 1 s", None, 1.0),
    "upgrade (3 large)": ("<= 0.5x setup-tool cold", "setup-tool cold", 0.5),
    "dry-run": ("<= 2 s", None, 2.0),
}


def _median(samples: Sequence[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def table(bench: Bench) -> str:
    transports = sorted({t for per in bench.results.values() for t in per}, reverse=False)
    head = " | ".join(f"{t}: median s (runs)" for t in transports)
    lines = [
        f"| measurement | {head} | peak RSS (MB, max) | goal | met |",
        "|---" * (4 + len(transports)) + "|",
    ]
    for what, per in bench.results.items():
        cells, met = [], []
        for transport in transports:
            samples = per.get(transport, [])
            runs = ", ".join(f"{s.seconds:.1f}" for s in samples)
            cell = f"{_median(samples):.2f} ({runs})" if samples else "-"
            goal = GOALS.get(what)
            if goal and samples:
                _, against, limit = goal
                if against:
                    ratio = _median(samples) / _median(bench.results[against][transport])
                    cell += f" = {ratio:.2f}x"
                    if limit is not None:
                        met.append(ratio <= limit)
                elif limit is not None:
                    met.append(_median(samples) <= limit)
            cells.append(cell)
        rss = max(s.peak_rss_mb for samples in per.values() for s in samples)
        goal_text = GOALS[what][0] if what in GOALS else ""
        verdict = "" if not met else ("yes" if all(met) else "no")
        lines.append(f"| {what} | {' | '.join(cells)} | {rss:.0f} | {goal_text} | {verdict} |")
    peak = max(s.peak_rss_mb for per in bench.results.values() for v in per.values() for s in v)
    ours = max(
        s.peak_rss_mb
        for what, per in bench.results.items()
        if not what.startswith("raw")
        for v in per.values()
        for s in v
    )
    met = "yes" if ours <= RSS_GOAL_MB else "no"
    lines.append(
        f"\npeak RSS of setup-tool: {ours:.0f} MB (goal <= {RSS_GOAL_MB} MB: {met}); "
        f"of any process measured: {peak:.0f} MB"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/setup-tool-bench"))
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    parser.add_argument("--roots", nargs="+", default=DEFAULT_ROOTS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size by this")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transports", nargs="+", default=["file", "http"])
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    parser.add_argument("--clean", action="store_true", help="delete --work at the end")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    packages = read_model(args.lock, args.roots, args.scale)
    channel = build_channel(args.work / "channel", packages, log)
    log(
        f"channel: {len(channel.base)} packages, {channel.bytes / MB / 1024:.2f} GiB, "
        f"{sum(p.files for p in packages)} files; upgrade rebuilds {', '.join(channel.upgraded)}"
    )
    env = _environment(packages)
    bench = Bench(args.work, channel, env)
    try:
        with serve(channel.root) as http_url:
            urls = {"file": channel.url, "http": http_url}
            for number in range(1, args.runs + 1):
                for transport in args.transports:
                    log(f"round {number}/{args.runs}, {transport}://")
                    one_round(bench, transport, urls[transport], log)
    finally:
        if args.clean:
            shutil.rmtree(args.work, ignore_errors=True)
    print(_header(channel, packages, args))
    print(table(bench))
    if args.json:
        data = {
            w: {t: [s.__dict__ for s in v] for t, v in per.items()}
            for w, per in bench.results.items()
        }
        args.json.write_text(json.dumps(data, indent=1))


def _environment(packages: Sequence[Package]) -> dict[str, str]:
    """The benchmark's processes: no user settings, a driver that fits the lock's CUDA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SETUP_TOOL_", "CONDA_"))}
    cuda = next((p.version for p in packages if p.name == "cuda-version"), None)
    if cuda:
        env["CONDA_OVERRIDE_CUDA"] = cuda
    env["PYTHONPATH"] = str(REPO)
    return env


def _header(channel: Channel, packages: Sequence[Package], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    return (
        f"{len(channel.base)} packages, {channel.bytes / MB / 1024:.2f} GiB "
        f"(--scale {args.scale:g}), {sum(p.files for p in packages)} files; "
        f"{os.cpu_count()} cores, load {load:.1f} at the end; {args.runs} runs"
    )


if __name__ == "__main__":
    main()
