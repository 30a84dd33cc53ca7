"""Where a lock's PyTorch comes from: conda-forge's builds (the default) or PyTorch's wheels.

``--torch-from wheels`` is the path PyTorch itself documents (https://pytorch.org/get-started/
locally/, "pip" with ``--index-url https://download.pytorch.org/whl/<backend>``; its conda
channel is retired, pytorch/pytorch#138506), inside the conda environment: python, numpy and
the rest stay conda packages, and ``torch``/``torchvision`` become ``manager: pip`` wheels
locked from PyTorch's index for the variant:

    cpu    https://download.pytorch.org/whl/cpu   (``torch-2.13.0+cpu-...``, Linux and macOS)
    cuda   https://download.pytorch.org/whl/cu130 or .../cu126, the newest whose CUDA the
           lock's ``__cuda`` runs (``cuda_compat.check``: a cuXY wheel needs a driver for
           CUDA X; ``__cuda 12.9`` → cu126, ``--cuda 13.0`` → cu130)
    mps    PyPI (https://pypi.org/simple): PyTorch publishes its macOS arm64 wheels there

``SETUP_TOOL_TORCH_INDEX`` replaces ``https://download.pytorch.org/whl`` with a mirror of it
that keeps its layout (``<mirror>/cpu``, ``<mirror>/cu126``, ...).

The choice is a property of the lock: ``setup-tool.torch-from`` in its custom metadata, read
back by ``lock``, ``lock --check`` and ``env`` unless ``--torch-from`` says otherwise, and part
of what is hashed (the spec with the conda PyTorch packages replaced by the pip requirements
and PyTorch's index), so ``--check`` sees it.
"""

from __future__ import annotations

from typing import Any

from setup_tool.cuda_compat import check as cuda_fits
from setup_tool.errors import UsageError
from setup_tool.variants import Variant

CONDA_FORGE = "conda-forge"
WHEELS = "wheels"
TORCH_SOURCES = (CONDA_FORGE, WHEELS)
PYTORCH_WHEELS = "https://download.pytorch.org/whl"
INDEX_ENV_VAR = "SETUP_TOOL_TORCH_INDEX"
# The CUDA wheel indexes offered, newest first: (the CUDA they are built with, index name).
CUDA_WHEEL_INDEXES = (("13.0", "cu130"), ("12.6", "cu126"))
# conda packages the wheels replace (conda-forge's pytorch, torchvision and the metapackages
# that pin the build kind: conda-forge/pytorch-cpu-feedstock, torchvision-feedstock) → the
# PyPI requirement that takes each one's place, if any.
REPLACED = {
    "pytorch": "torch",
    "torchvision": "torchvision",
    "pytorch-cpu": None,
    "pytorch-gpu": None,
}


def validate(torch_from: str | None) -> None:
    if torch_from is not None and torch_from not in TORCH_SOURCES:
        raise UsageError(
            f"--torch-from {torch_from!r} is not a PyTorch source",
            f"use one of: {', '.join(TORCH_SOURCES)}",
        )


def wheel_index(variant: Variant, cuda: str | None, base: str = PYTORCH_WHEELS) -> str | None:
    """PyTorch's wheel index for ``variant`` under ``base`` (None: PyPI has them)."""
    base = base.rstrip("/")
    if variant is Variant.mps:
        return None
    if variant is Variant.cpu:
        return f"{base}/cpu"
    for built_with, name in CUDA_WHEEL_INDEXES:
        if cuda is not None and cuda_fits(built_with, cuda).fits:
            return f"{base}/{name}"
    offered = ", ".join(f"{n} (CUDA {c})" for c, n in CUDA_WHEEL_INDEXES)
    raise UsageError(
        f"no PyTorch CUDA wheel index runs on a driver for CUDA {cuda} (offered: {offered})",
        "lock for a newer driver with --cuda 12.6 or newer, or use --torch-from conda-forge",
    )


def with_torch_wheels(
    lock_spec: Any, variant: Variant, cuda: str | None, base: str = PYTORCH_WHEELS
) -> Any:
    """``lock_spec`` with conda's PyTorch packages replaced by pip requirements on the wheels,
    and PyTorch's index first among the pip repositories."""
    from conda_lock.models.lock_spec import VersionedDependency
    from conda_lock.models.pip_repository import PipRepository

    dependencies = {}
    for platform, deps in lock_spec.dependencies.items():
        kept = [d for d in deps if not (d.manager == "conda" and d.name in REPLACED)]
        pip_names = {d.name for d in kept if d.manager == "pip"}
        for dep in deps:
            name = REPLACED.get(dep.name) if dep.manager == "conda" else None
            if name is not None and name not in pip_names:
                version = _pep440(dep.version)
                kept.append(VersionedDependency(name=name, manager="pip", version=version))
                pip_names.add(name)
        if not any(d.manager == "conda" and d.name == "pip" for d in kept):
            # What conda-lock's parser adds for a pip section (src_parser/environment_yaml.py).
            kept.append(VersionedDependency(name="pip", manager="conda", version="*"))
        dependencies[platform] = kept
    repositories = list(lock_spec.pip_repositories)
    index = wheel_index(variant, cuda, base)
    if index is not None and index not in [r.url for r in repositories]:
        repositories.insert(0, PipRepository.from_string(index))
    return lock_spec.model_copy(
        update={"dependencies": dependencies, "pip_repositories": repositories}
    )


def _pep440(conda_version: str | None) -> str:
    """A conda version spec as a PEP 440 specifier (``2.13.*`` → ``==2.13.*``, ``*`` → "")."""
    text = (conda_version or "").replace(" ", "")
    if text in ("", "*"):
        return ""
    parts = []
    for part in text.split(","):
        parts.append(part if part[0] in "<>=!~" else f"=={part}")
    return ",".join(parts)
