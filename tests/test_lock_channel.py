"""The local test channel (tests/channel.py): conda-forge's packaging scheme, reproducible
bytes, both archive formats, and packages py-rattler really installs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from channel import (
    PREFIX_PLACEHOLDER,
    LocalChannel,
    PackageSpec,
    build_channel,
    conda_forge_like,
    serve_channel,
)
from install_support import newer_numpy


def test_pytorch_builds_follow_conda_forge_scheme(local_channel: LocalChannel) -> None:
    linux = {p.build: p for p in local_channel.find("pytorch", "linux-64") if p.version == "2.13.0"}
    builds = sorted(linux)
    assert [b.rsplit("_", 2)[0] for b in builds] == [
        "cpu_mkl_py312",
        "cpu_mkl_py313",
        "cuda129_mkl_py312",
        "cuda129_mkl_py313",
        "cuda130_mkl_py312",
        "cuda130_mkl_py313",
    ]
    for build, package in linux.items():
        spec = package.spec
        # The recipe's base build number is 2; CUDA adds 200 and MKL 100.
        assert spec.build_number == (302 if build.startswith("cuda") else 102)
        assert build.endswith(f"_{spec.build_number}")
        if build.startswith("cuda"):
            assert "__cuda" in spec.depends
            cuda = "12.9" if build.startswith("cuda129") else "13.0"
            assert any(d.startswith(f"cuda-version >={cuda},<") for d in spec.depends)
            assert spec.constrains == ("pytorch-gpu 2.13.0", "pytorch-cpu <0.0a0")
        else:
            assert not any("cuda" in d for d in spec.depends)
            assert spec.constrains == ("pytorch-cpu 2.13.0", "pytorch-gpu <0.0a0")
    aarch64 = [p.build for p in local_channel.find("pytorch", "linux-aarch64")]
    assert all("_generic_" in b for b in aarch64)
    osx = [p.build for p in local_channel.find("pytorch", "osx-arm64")]
    assert osx and all(b.startswith("cpu_generic_") for b in osx)


def test_cuda_version_and_metapackages(local_channel: LocalChannel) -> None:
    (cuda13,) = [p for p in local_channel.find("cuda-version") if p.version == "13.0"]
    assert cuda13.subdir == "noarch" and cuda13.spec.noarch == "generic"
    assert cuda13.spec.constrains == ("__cuda >=13", "cudatoolkit 13.0|13.0.*")
    gpu = local_channel.find("pytorch-gpu", "linux-64", build="cuda129")
    assert {p.spec.depends[0].split(" ", 2)[2] for p in gpu} == {"cuda*_mkl*300", "cuda*_mkl*302"}
    assert not local_channel.find("pytorch-gpu", "osx-arm64")
    vision = local_channel.find("torchvision", "linux-64", build="cuda130_py312")
    assert {p.version for p in vision} == {"0.27.1", "0.28.0"}
    newest = next(p for p in vision if p.version == "0.28.0")
    assert "pytorch >=2.13,<2.14.0a0" in newest.spec.depends
    assert "pytorch * cuda*" in newest.spec.depends
    assert "cuda-version >=13.0,<14" in newest.spec.depends


def test_channel_holds_both_archive_formats_and_repodata(local_channel: LocalChannel) -> None:
    formats = {p.spec.fmt for p in local_channel.packages}
    assert formats == {".conda", ".tar.bz2"}
    for subdir in ("linux-64", "linux-aarch64", "osx-arm64", "noarch"):
        repodata = json.loads((local_channel.root / subdir / "repodata.json").read_text())
        listed = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}
        files = {p.filename: p for p in local_channel.packages if p.subdir == subdir}
        assert set(listed) == set(files)
        for name, entry in listed.items():
            assert entry["sha256"] == files[name].sha256


def test_packages_are_byte_reproducible(tmp_path: Path) -> None:
    specs = [s for s in conda_forge_like() if s.subdir in ("noarch", "osx-arm64")]
    first = build_channel(tmp_path / "a", specs)
    second = build_channel(tmp_path / "b", specs)
    assert [p.sha256 for p in first.packages] == [p.sha256 for p in second.packages]


def test_archives_are_readable_by_conda_package_handling(
    local_channel: LocalChannel, tmp_path: Path
) -> None:
    from conda_package_handling import api

    for package in (
        local_channel.find("python", "linux-64")[0],  # .conda, with a prefix placeholder
        local_channel.find("typing_extensions", "noarch")[0],  # .tar.bz2, noarch: python
    ):
        out = tmp_path / package.filename
        api.extract(str(package.path), dest_dir=str(out))
        index = json.loads((out / "info" / "index.json").read_text())
        assert (index["name"], index["build"]) == (package.name, package.build)
        paths = json.loads((out / "info" / "paths.json").read_text())["paths"]
        assert paths and all((out / entry["_path"]).is_file() for entry in paths)


def test_served_over_http(local_channel: LocalChannel, http_channel_url: str) -> None:
    with urllib.request.urlopen(f"{http_channel_url}/noarch/repodata.json", timeout=5) as reply:
        assert "cuda-version-12.9" in reply.read().decode()
    package = local_channel.find("numpy", "osx-arm64")[0]
    url = f"{http_channel_url}/osx-arm64/{package.filename}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.read() == package.path.read_bytes()


def test_copy_and_add_make_a_new_release(local_channel: LocalChannel, tmp_path: Path) -> None:
    copy = local_channel.copy_to(tmp_path / "copy")
    release = PackageSpec("filelock", "3.21.0", "pyhd8ed1ab_0", 0, "noarch", noarch="python")
    grown = copy.add([release])
    assert [p.version for p in grown.find("filelock")] == ["3.20.0", "3.21.0"]
    repodata = (tmp_path / "copy" / "noarch" / "repodata.json").read_text()
    assert "filelock-3.21.0-pyhd8ed1ab_0.conda" in repodata
    assert "filelock-3.21.0" not in (local_channel.root / "noarch" / "repodata.json").read_text()


def test_a_release_added_within_the_same_second_is_seen_over_http(
    local_channel: LocalChannel, tmp_path: Path
) -> None:
    """The served repodata is revalidated by content, not by its mtime's whole second.

    The rewritten repodata.json gets back the first one's mtime, the worst case of a rewrite
    in the same second: an ``If-Modified-Since`` answer would be "304" and keep numpy 2.3.5.
    """
    import rattler

    copy = local_channel.copy_to(tmp_path / "channel")
    repodata = copy.root / "linux-64" / "repodata.json"

    def numpy_versions(url: str) -> set[str]:
        async def query() -> set[str]:
            gateway = rattler.Gateway(cache_dir=tmp_path / "repodata")  # one cache: revalidates
            found = await gateway.query(
                [rattler.Channel(url)], ["linux-64"], [rattler.MatchSpec("numpy")]
            )
            return {
                str(record.version)
                for records in found
                for record in records
                if record.name.normalized == "numpy"  # the query also returns dependencies
            }

        return asyncio.run(query())

    with serve_channel(copy.root) as url:
        assert numpy_versions(url) == {"2.3.5"}
        first = repodata.stat()
        copy.add(newer_numpy(copy))
        os.utime(repodata, ns=(first.st_atime_ns, first.st_mtime_ns))
        assert numpy_versions(url) == {"2.3.5", "2.4.0"}


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("python3") is None, reason="linux-64")
def test_py_rattler_installs_a_solved_environment(channel_url: str, tmp_path: Path) -> None:
    import rattler

    from setup_tool.virtual_packages import baseline

    async def solve_and_install() -> None:
        records = await rattler.solve(
            sources=[channel_url],
            specs=[rattler.MatchSpec(s) for s in ("python 3.12.*", "pytorch * cpu*", "numpy")],
            platforms=["linux-64", "noarch"],
            virtual_packages=[vp.to_rattler() for vp in baseline("linux-64")],
            gateway=rattler.Gateway(cache_dir=tmp_path / "repodata"),
        )
        await rattler.install(
            records,
            target_prefix=tmp_path / "env",
            cache_dir=tmp_path / "pkgs",
            show_progress=False,
        )

    asyncio.run(solve_and_install())
    prefix = tmp_path / "env"
    interpreter = (prefix / "bin" / "python").read_text()
    assert PREFIX_PLACEHOLDER not in interpreter and str(prefix) in interpreter
    # noarch: python packages are relocated into the interpreter's site-packages.
    assert (prefix / "lib" / "python3.12" / "site-packages" / "typing_extensions.py").is_file()
    done = subprocess.run(
        [
            str(prefix / "bin" / "python"),
            "-c",
            "import torch; print(torch.__version__, torch.version.cuda)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.split() == ["2.13.0", "None"], done.stderr
