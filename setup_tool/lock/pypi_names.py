"""Which PyPI distributions the conda part of a lock already provides, by PyPI name.

A pip requirement on a package that conda already installed must not be locked again from
PyPI (two copies in one site-packages), and the pip solve must accept the conda version. This
is conda-lock's rule (``conda_lock.pypi_solver.solve_pypi``): every conda record that depends
on ``python`` provides the PyPI distribution its name maps to, at its version; when two records
map to one name, the one whose conda name differs (the Python package, e.g. ``python-xxhash``
over the C library ``xxhash``) wins.

The name of a record, in this order:

1. its PURL: a repodata record may list ``purls: ["pkg:pypi/<name>"]`` (the package-URL form
   conda's CEP 17 proposes; https://github.com/conda/ceps), which is exact when present;
2. ``CONDA_TO_PYPI``: the names that differ on conda-forge, fed to conda-lock's own lookup
   (``conda_lock.lookup.conda_name_to_pypi_name``) as a local mapping file. conda-lock
   downloads the full table (regro/cf-graph-countyfair, ``mappings/pypi/
   grayskull_pypi_mapping.json``) at lock time; setup-tool locks offline from mirrors, so it
   carries the entries that matter for PyTorch environments instead;
3. otherwise the conda name itself, normalized as PyPI normalizes names (PEP 503), which is
   conda-lock's fallback too and right for most of conda-forge (numpy, pillow, sympy, ...).

The same file is what ``condalock.lock_specification`` gives conda-lock's parser, so parsing a
``- pip:`` section needs no download either.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# conda-forge package name → the PyPI distribution it installs, where they differ. Each from
# the feedstock's recipe (conda-forge/<name>-feedstock, recipe/meta.yaml or recipe.yaml: the
# package name, and the upstream source it builds).
CONDA_TO_PYPI: Mapping[str, str] = {
    "pytorch": "torch",  # conda-forge/pytorch-cpu-feedstock builds pytorch/pytorch as `pytorch`
    "matplotlib-base": "matplotlib",  # conda-forge/matplotlib-feedstock (matplotlib without Qt)
    "msgpack-python": "msgpack",  # conda-forge/msgpack-python-feedstock
    "python-xxhash": "xxhash",  # conda-forge/python-xxhash-feedstock (`xxhash` is the C library)
    "python-tzdata": "tzdata",  # conda-forge/python-tzdata-feedstock
    "python-flatbuffers": "flatbuffers",  # conda-forge/python-flatbuffers-feedstock
    "python-build": "build",  # conda-forge/python-build-feedstock (conda-lock's lookup doctest)
    "python-graphviz": "graphviz",  # conda-forge/python-graphviz-feedstock
    "pytables": "tables",  # conda-forge/pytables-feedstock
    "py-xgboost": "xgboost",  # conda-forge/xgboost-feedstock (the Python output)
    "dask-core": "dask",  # conda-forge/dask-core-feedstock
    "brotli-python": "brotli",  # conda-forge/brotli-feedstock (the Python output)
    "ruamel.yaml": "ruamel-yaml",  # conda-forge/ruamel.yaml-feedstock
    "typing_extensions": "typing-extensions",  # conda-forge/typing_extensions-feedstock
    "importlib_metadata": "importlib-metadata",  # conda-forge/importlib_metadata-feedstock
    "huggingface_hub": "huggingface-hub",  # conda-forge/huggingface_hub-feedstock
}


def canonical(name: str) -> str:
    """A PyPI name normalized (PEP 503: lower case, runs of ``-_.`` become ``-``)."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def mapping_file(cache_dir: Path | None = None) -> Path:
    """``CONDA_TO_PYPI`` as a conda-lock mapping file (grayskull's JSON layout), written once.

    Content-addressed, so concurrent runs agree and a changed table gets a new file.
    """
    table = {
        canonical(pypi): {"conda_name": conda, "conda_forge": conda, "pypi_name": canonical(pypi)}
        for conda, pypi in sorted(CONDA_TO_PYPI.items())
    }
    data = json.dumps(table, indent=1, sort_keys=True).encode()
    folder = (cache_dir or Path(tempfile.gettempdir())) / "setup-tool-pypi-mapping"
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    return path


def pypi_name(record: Any, mapping: Path) -> str:
    """The PyPI name of one conda record (PURL, then the table via conda-lock, then itself)."""
    from conda_lock.lookup import conda_name_to_pypi_name

    for purl in _purls(record):
        if purl.startswith("pkg:pypi/"):
            return canonical(purl.removeprefix("pkg:pypi/").split("@")[0].split("?")[0])
    return canonical(conda_name_to_pypi_name(record.name.normalized, mapping_url=str(mapping)))


def _purls(record: Any) -> list[str]:
    purls = getattr(record, "purls", None)
    if purls is None:  # py-rattler 0.28 keeps them only in the record's JSON form
        try:
            purls = json.loads(record.to_json()).get("purls")
        except (AttributeError, ValueError):
            purls = None
    return [str(p) for p in purls or ()]


def conda_provided(records: Iterable[Any], mapping: Path) -> dict[str, tuple[str, str]]:
    """PyPI name → (version, conda name) for each conda record that is a Python package."""
    provided: dict[str, tuple[str, str]] = {}
    for record in records:
        conda_name = record.name.normalized
        if conda_name.startswith("__") or conda_name == "python":
            continue
        if not any(d.split()[0] == "python" for d in record.depends):
            continue
        name = pypi_name(record, mapping)
        if name not in provided or name != conda_name:
            provided[name] = (str(record.version), conda_name)
    return provided
