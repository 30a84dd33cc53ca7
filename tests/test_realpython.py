"""The real ``python`` conda package (``tests/realpython.py``): what it holds, and that an
environment installed from it has an interpreter of its own."""

from __future__ import annotations

import io
import json
import platform
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import Cli
from realenv import probe_interpreter, write_real_project
from realpython import SOURCE_PREFIX, XY, RealPythonChannel


def _members(archive: Path, part: str) -> dict[str, tarfile.TarInfo | bytes]:
    """name → bytes (regular files) or TarInfo (links) of the ``pkg``/``info`` part of a .conda."""
    import zstandard

    with zipfile.ZipFile(archive) as outer:
        (name,) = [n for n in outer.namelist() if n.startswith(f"{part}-")]
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(outer.read(name))).read()
    members: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            extracted = tar.extractfile(info) if info.isfile() else None
            members[info.name] = extracted.read() if extracted else info
    return members


@pytest.fixture(scope="module")
def payload(real_python: RealPythonChannel) -> dict[str, tarfile.TarInfo | bytes]:
    return _members(real_python.python.package.path, "pkg")


@pytest.fixture(scope="module")
def info(real_python: RealPythonChannel) -> dict[str, tarfile.TarInfo | bytes]:
    return _members(real_python.python.package.path, "info")


def test_index_json_describes_the_running_interpreter(
    info: dict[str, tarfile.TarInfo | bytes], real_python: RealPythonChannel
) -> None:
    index = json.loads(info["info/index.json"])  # type: ignore[arg-type]
    assert index["name"] == "python"
    assert index["version"] == platform.python_version()
    assert index["subdir"] == "linux-64"
    (glibc,) = index["depends"]
    assert glibc.startswith("__glibc >=2.")
    assert real_python.python.glibc in glibc
    repodata = json.loads((real_python.channel.root / "linux-64/repodata.json").read_text())
    assert list(repodata["packages.conda"]) == [real_python.python.package.filename]


def test_paths_json_matches_the_payload_file_by_file(
    payload: dict[str, tarfile.TarInfo | bytes], info: dict[str, tarfile.TarInfo | bytes]
) -> None:
    import hashlib

    paths = json.loads(info["info/paths.json"])["paths"]  # type: ignore[arg-type]
    assert sorted(p["_path"] for p in paths) == sorted(payload)
    for entry in paths:
        member = payload[entry["_path"]]
        if entry["path_type"] == "softlink":
            assert isinstance(member, tarfile.TarInfo) and member.issym(), entry["_path"]
            continue
        assert entry["path_type"] == "hardlink"
        assert isinstance(member, bytes)
        assert hashlib.sha256(member).hexdigest() == entry["sha256"], entry["_path"]
        assert len(member) == entry["size_in_bytes"], entry["_path"]
        # Exactly the text files that name the build prefix carry it as their placeholder.
        # (libpython keeps it as its compiled-in fallback prefix, which CPython uses only when
        # it finds no stdlib beside the executable; a binary placeholder can't grow longer.)
        is_elf = member[:4] == b"\x7fELF"
        names_source = not is_elf and str(SOURCE_PREFIX).encode() in member
        assert names_source == ("prefix_placeholder" in entry), entry["_path"]
        if names_source:
            assert entry["prefix_placeholder"] == str(SOURCE_PREFIX)
            assert entry["file_mode"] == "text"
            assert b"\0" not in member


def test_the_payload_has_the_interpreter_and_stdlib_but_no_tests_or_caches(
    payload: dict[str, tarfile.TarInfo | bytes],
) -> None:
    stdlib = f"lib/python{XY}"
    for needed in (
        f"bin/python{XY}",
        "bin/python3",
        "bin/python",
        f"lib/libpython{XY}.so.1.0",
        f"{stdlib}/os.py",
        f"{stdlib}/site-packages/README.txt",
    ):
        assert needed in payload, needed
    assert any(name.startswith(f"{stdlib}/lib-dynload/_ssl.") for name in payload)
    assert any(name.startswith(f"{stdlib}/_sysconfigdata_") for name in payload)
    assert [n for n in payload if n.startswith(f"{stdlib}/site-packages/")] == [
        f"{stdlib}/site-packages/README.txt"
    ]
    for name in payload:
        parts = name.split("/")
        assert "__pycache__" not in parts, name
        assert not {"test", "tests", "tkinter", "idlelib"} & set(parts), name
        assert not name.endswith(".a"), name


def test_no_elf_file_keeps_an_absolute_runpath(
    payload: dict[str, tarfile.TarInfo | bytes],
) -> None:
    elf = {n: d for n, d in payload.items() if isinstance(d, bytes) and d[:4] == b"\x7fELF"}
    assert f"bin/python{XY}" in elf and f"lib/libpython{XY}.so.1.0" in elf
    runpath = f"{SOURCE_PREFIX}/lib".encode()
    assert [n for n, data in elf.items() if runpath + b"\0" in data] == []


def test_an_installed_environment_has_its_own_interpreter(
    cli: Cli, tmp_path: Path, real_python: RealPythonChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lock (conda only) and install the real python, then ask the interpreter where it lives:
    everything (stdlib, extension modules, libpython, sysconfig) must be the prefix's."""
    project = write_real_project(tmp_path / "project")
    monkeypatch.setenv("SETUP_TOOL_PROJECT", str(project))
    cli.ok("lock", "--variant", "cpu", "--channel", real_python.url)
    cli.ok("install", "--variant", "cpu")
    prefix = project / ".envs/cpu"
    said = probe_interpreter(prefix / "bin/python")

    assert said["version"] == platform.python_version()
    for key in ("prefix", "exec_prefix", "base_prefix"):
        assert said[key] == str(prefix), key
    paths = said["paths"]
    assert isinstance(paths, dict)
    assert paths["stdlib"] == str(prefix / f"lib/python{XY}")
    assert paths["purelib"] == str(prefix / f"lib/python{XY}/site-packages")
    assert paths["scripts"] == str(prefix / "bin")
    # _sysconfigdata was relocated by the installer (its build prefix was a placeholder).
    assert said["libdir"] == str(prefix / "lib")
    assert said["config_prefix"] == str(prefix)
    modules = said["modules"]
    assert isinstance(modules, dict)
    for name in ("_ssl", "_sqlite3", "_ctypes"):
        assert modules[name].startswith(str(prefix / f"lib/python{XY}/lib-dynload/")), modules
    assert said["libpython"] == [str(prefix / f"lib/libpython{XY}.so.1.0")]
    assert not any(str(SOURCE_PREFIX) in entry for entry in said["path"])  # type: ignore[attr-defined]

    ldd = subprocess.run(
        ["ldd", str(prefix / f"bin/python{XY}")], capture_output=True, text=True, check=True
    ).stdout
    (line,) = [x for x in ldd.splitlines() if "libpython" in x]
    assert str(prefix / "lib") in line.replace("/bin/../lib", "/lib")
