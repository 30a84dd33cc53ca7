"""Which PyPI packages a conda solve provides (``setup_tool.lock.pypi_names``), on real
py-rattler records built from ``index.json`` data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from setup_tool.lock.pypi_names import conda_provided, mapping_file, pypi_name


def record(tmp_path: Path, name: str, version: str, depends: list[str], **extra: Any) -> Any:
    import rattler

    path = tmp_path / f"{name}-{version}.json"
    data = {"name": name, "version": version, "build": "0", "build_number": 0}
    path.write_text(json.dumps({**data, "depends": depends, "subdir": "linux-64", **extra}))
    return rattler.PackageRecord.from_index_json(path)


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    return mapping_file(tmp_path / "cache")


def test_names_from_purl_table_and_identity(tmp_path: Path, mapping: Path) -> None:
    py = ["python >=3.12"]
    assert pypi_name(record(tmp_path, "pytorch", "2.13.0", py), mapping) == "torch"
    assert pypi_name(record(tmp_path, "matplotlib-base", "3.10.8", py), mapping) == "matplotlib"
    assert pypi_name(record(tmp_path, "typing_extensions", "4.15.0", py), mapping) == (
        "typing-extensions"
    )
    assert pypi_name(record(tmp_path, "numpy", "2.3.5", py), mapping) == "numpy"
    # A PURL in the repodata record wins over the table and the name.
    purl = record(tmp_path, "my-conda-name", "1.0", py, purls=["pkg:pypi/Real.Name@1.0"])
    assert pypi_name(purl, mapping) == "real-name"


def test_only_python_packages_count_and_the_python_one_wins(tmp_path: Path, mapping: Path) -> None:
    records = [
        record(tmp_path, "python", "3.12.12", []),
        record(tmp_path, "libblas", "3.9.0", []),  # no python dependency: not a PyPI package
        record(tmp_path, "numpy", "2.3.5", ["python >=3.12,<3.13", "libblas >=3"]),
        record(tmp_path, "xxhash", "0.8.3", []),  # the C library
        record(tmp_path, "python-xxhash", "3.5.0", ["python >=3.12"]),
        record(tmp_path, "__glibc", "2.28", []),
    ]
    provided = conda_provided(records, mapping)
    assert provided == {"numpy": ("2.3.5", "numpy"), "xxhash": ("3.5.0", "python-xxhash")}


def test_the_mapping_file_is_what_conda_lock_reads(mapping: Path) -> None:
    from conda_lock.lookup import conda_name_to_pypi_name, pypi_name_to_conda_name

    assert conda_name_to_pypi_name("pytorch", mapping_url=str(mapping)) == "torch"
    assert pypi_name_to_conda_name("torch", mapping_url=str(mapping)) == "pytorch"
    assert mapping_file(mapping.parent.parent) == mapping  # content-addressed: written once


@pytest.mark.parametrize("order", [1, -1])
def test_when_two_records_map_to_one_name_the_renamed_one_wins(
    tmp_path: Path, mapping: Path, order: int
) -> None:
    """conda-lock's rule (pypi_solver.solve_pypi): dask-core over the dask metapackage."""
    records = [
        record(tmp_path, "dask", "2025.1.0", ["python >=3.10", "dask-core 2025.1.0"]),
        record(tmp_path, "dask-core", "2025.1.0", ["python >=3.10"]),
    ][::order]
    assert conda_provided(records, mapping) == {"dask": ("2025.1.0", "dask-core")}
