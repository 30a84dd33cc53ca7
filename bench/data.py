"""The bundled MNIST: checksums, decompression into a cache, and the two ways to read it.

The four IDX files ship gzip-compressed in ``bench/data/mnist/`` with ``SHA256SUMS`` (of the
.gz files as shipped) and are verified before every use. ``--data-dir`` points at another copy:
either the same .gz files, or the decompressed IDX files, checked against the canonical MD5s.

The faithful loop reads them the way the seed did, through torchvision's ``datasets.MNIST``
with ``ToTensor``: torchvision wants the decompressed files under ``<root>/MNIST/raw/``, so
they are decompressed once into a cache directory (``$BENCH_CACHE_DIR``, else the user cache,
else a temporary directory). Where torchvision does not import, ``IdxMnist`` gives the same
tensors (float32 in [0, 1], shape 1x28x28, integer labels). The fast loops take the raw uint8
arrays (``MnistArrays``) and scale them on the device.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

BUNDLED_DIR = Path(__file__).parent / "data" / "mnist"
NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# MD5 of each file decompressed: the canonical values (LeCun's site; torchvision's
# MNIST.resources list the same ones).
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
_IDX_UBYTE = 0x08


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checksums(path: Path = BUNDLED_DIR / "SHA256SUMS") -> dict[str, str]:
    """``sha256sum`` output → {file name: hex digest}."""
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def verify(data_dir: Path | None = None) -> dict[str, Path]:
    """Check the four files in ``data_dir`` (default: the bundled copy); name the one that fails.

    Returns {IDX name: the verified file}, a .gz or a decompressed file per name.
    """
    directory = data_dir or BUNDLED_DIR
    if not directory.is_dir():
        raise DataError(
            f"--data-dir {directory}: no such directory",
            "give a directory holding the four MNIST IDX files (.gz or decompressed)",
        )
    sums = read_checksums()
    found = {}
    for name in NAMES:
        gz, raw = directory / f"{name}.gz", directory / name
        if gz.is_file():
            if _digest(gz, "sha256") != sums[gz.name]:
                raise DataError(
                    f"{gz} fails its checksum (sha256 differs from bench/data/mnist/SHA256SUMS)",
                    "the file is damaged or not the MNIST release; restore it from the repository",
                )
            found[name] = gz
        elif raw.is_file():
            if _digest(raw, "md5") != RAW_MD5[name]:
                raise DataError(
                    f"{raw} fails its checksum (md5 is not the canonical MNIST one)",
                    "the file is damaged or not the MNIST release",
                )
            found[name] = raw
        else:
            raise DataError(
                f"{directory} has no {name}.gz or {name}",
                "give a directory holding the four MNIST IDX files",
            )
    return found


def cache_root(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("BENCH_CACHE_DIR"):
        return Path(env["BENCH_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "setup-tool" / "bench"


def torchvision_root(files: dict[str, Path]) -> Path:
    """A directory ``root`` with the decompressed, verified files in ``root/MNIST/raw/``."""
    for base in (
        cache_root(),
        Path(tempfile.gettempdir()) / f"setup-tool-bench-{getattr(os, 'getuid', lambda: 0)()}",
    ):
        root = base / "mnist-v1"
        try:
            _materialise(files, root / "MNIST" / "raw")
        except OSError:
            continue  # an unwritable cache: fall back to the temporary directory
        return root
    raise DataError("could not decompress MNIST into the cache or a temporary directory")


def _materialise(files: dict[str, Path], raw_dir: Path) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = raw_dir / name
        if target.is_file() and _digest(target, "md5") == RAW_MD5[name]:
            continue
        opener = gzip.open if source.suffix == ".gz" else open
        # Write next to the target and rename: a run killed mid-copy leaves no half file.
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        with opener(source, "rb") as src, tmp.open("wb") as dst:
            dst.write(src.read())
        if _digest(tmp, "md5") != RAW_MD5[name]:
            tmp.unlink()
            raise DataError(f"{source} decompresses to a file with the wrong md5")
        tmp.replace(target)


def _read_idx(path: Path) -> Any:
    """An IDX file → a uint8 tensor shaped as its header says."""
    import torch

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = bytearray(f.read())
    _, dtype, ndim = struct.unpack_from(">HBB", data, 0)
    if dtype != _IDX_UBYTE:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    return torch.frombuffer(data, dtype=torch.uint8, offset=4 + 4 * ndim).reshape(shape)


@dataclass(frozen=True)
class MnistArrays:
    """The whole data set as tensors: images uint8 Nx28x28, labels int64 N."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_arrays(files: dict[str, Path]) -> MnistArrays:
    arrays = [_read_idx(files[name]) for name in NAMES]
    return MnistArrays(arrays[0], arrays[1].long(), arrays[2], arrays[3].long())


class IdxMnist:
    """torchvision's MNIST + ToTensor without torchvision: the same tensors, item by item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        import torch

        # ToTensor: HW uint8 → 1xHxW float32 divided by 255.
        image = self.images[index].unsqueeze(0).to(torch.float32).div(255)
        return image, int(self.labels[index])


@dataclass(frozen=True)
class FaithfulData:
    train: Dataset[Any]
    test: Dataset[Any]
    source: str  # "torchvision.datasets.MNIST" or "bench.data.IdxMnist"
    note: str | None = None  # why torchvision was not used


def faithful_datasets(files: dict[str, Path], *, use_torchvision: bool = True) -> FaithfulData:
    """The seed's data path: torchvision's MNIST with ToTensor, or the equivalent."""
    note = None
    if use_torchvision:
        try:
            from torchvision import datasets, transforms
        except Exception as exc:  # a broken torchvision can raise anything at import
            note = f"torchvision did not import ({type(exc).__name__}: {exc})"
        else:
            root = torchvision_root(files)
            to_tensor = transforms.ToTensor()
            return FaithfulData(
                datasets.MNIST(root, train=True, download=False, transform=to_tensor),
                datasets.MNIST(root, train=False, download=False, transform=to_tensor),
                "torchvision.datasets.MNIST",
            )
    arrays = load_arrays(files)
    return FaithfulData(
        IdxMnist(arrays.train_images, arrays.train_labels),  # type: ignore[arg-type]
        IdxMnist(arrays.test_images, arrays.test_labels),  # type: ignore[arg-type]
        "bench.data.IdxMnist",
        note or "torchvision not used",
    )
