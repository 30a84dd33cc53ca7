"""What the wheel ships: setup_tool and the benchmark under a name no other project takes
(``setup_tool_bench``, from the ``bench/`` folder), no top-level ``bench``, no tuning script.

``pyproject.toml`` lists the packages by hand (a mapped package cannot be discovered), so this
checks the list against the folders: a new sub-package that is not listed would be missing
from the wheel while every test, run from the checkout, still passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib
from setuptools import find_packages

ROOT = Path(__file__).parent.parent


def _setuptools_config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_package_list_matches_the_folders() -> None:
    config = _setuptools_config()
    assert config["package-dir"] == {"setup_tool_bench": "bench"}
    expected = [
        *find_packages(str(ROOT), include=["setup_tool", "setup_tool.*"]),
        "setup_tool_bench",
        *(f"setup_tool_bench.{sub}" for sub in find_packages(str(ROOT / "bench"))),
    ]
    assert sorted(config["packages"]) == sorted(expected)
    assert "bench" not in config["packages"]


def test_the_tuning_sweep_is_not_in_the_shipped_package() -> None:
    assert not list((ROOT / "bench").rglob("sweep*.py"))
    assert (ROOT / "scripts" / "bench_sweep.py").is_file()


def test_the_benchmark_imports_under_its_installed_name() -> None:
    import setup_tool_bench
    import setup_tool_bench.config

    assert Path(setup_tool_bench.__file__).parent == ROOT / "bench"
    assert setup_tool_bench.config.LOOPS == ("seed", "fast", "throughput")
