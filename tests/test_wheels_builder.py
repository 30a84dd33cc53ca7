"""The test-wheel builder (``tests/wheels.py``) writes wheels that real installers accept."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from wheels import WheelSpec, build_wheel, pip_lock_entry, wheel_bytes


def _demo() -> WheelSpec:
    return WheelSpec(
        "Demo.Pkg",
        "1.2.0",
        files=(("demo_pkg/__init__.py", "def main():\n    print('demo says hi')\n"),),
        data=(("data", "share/demo/readme.txt", "hello\n"),),
        console_scripts=(("demo", "demo_pkg:main"),),
        requires=("numpy>=1.23", "typing-extensions"),
    )


def test_same_spec_same_bytes(tmp_path: Path) -> None:
    assert wheel_bytes(_demo()) == wheel_bytes(_demo())
    built = build_wheel(tmp_path, _demo())
    assert built.filename == "demo_pkg-1.2.0-py3-none-any.whl"
    assert built.size == built.path.stat().st_size


def test_record_matches_the_contents(tmp_path: Path) -> None:
    from installer.sources import WheelFile

    built = build_wheel(tmp_path, _demo())
    with WheelFile.open(built.path) as source:
        source.validate_record(validate_contents=True)  # raises on any mismatch
        assert source.dist_info_dir == "demo_pkg-1.2.0.dist-info"
        assert "entry_points.txt" in source.dist_info_filenames


def test_tag_sets_are_expanded_in_WHEEL(tmp_path: Path) -> None:
    spec = WheelSpec(
        "native", "0.1", "cp312", "cp312", "manylinux_2_17_x86_64.manylinux2014_x86_64"
    )
    built = build_wheel(tmp_path, spec)
    with zipfile.ZipFile(built.path) as archive:
        wheel = archive.read("native-0.1.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel
    assert "Tag: cp312-cp312-manylinux2014_x86_64" in wheel
    assert "Tag: cp312-cp312-manylinux_2_17_x86_64" in wheel


def test_pip_installs_it_and_runs_its_console_script(tmp_path: Path) -> None:
    built = build_wheel(tmp_path / "wheels", _demo())
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target / "bin/python"),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(built.path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if "no such option: --python" in done.stderr:
        pytest.skip("this pip cannot install into another interpreter")
    assert done.returncode == 0, done.stderr
    ran = subprocess.run([str(target / "bin/demo")], capture_output=True, text=True, check=True)
    assert ran.stdout == "demo says hi\n"
    assert (target / "share/demo/readme.txt").read_text() == "hello\n"


def test_lock_entry_names_the_requirements(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, _demo())
    entry = pip_lock_entry(built, "linux-64")
    assert entry["dependencies"] == {"numpy": ">=1.23", "typing-extensions": "*"}
    assert entry["hash"] == {"sha256": built.sha256}
    assert entry["manager"] == "pip" and entry["url"] == built.url
