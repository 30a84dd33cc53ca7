"""``setup_tool.lock`` against the local channel: what goes into each lock, conda-lock
compatibility, determinism, ``check_lock``, and failures that must leave the lockfile alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from setup_tool.errors import ChannelUnreachable, SolveError, SpecError, UsageError
from setup_tool.lock import check_lock, lock_variant, lock_variants
from setup_tool.paths import lockfile_path
from setup_tool.variants import VARIANT_PLATFORMS, Variant


def parse(path: Path) -> Any:
    from conda_lock.lockfile import parse_conda_lock_file

    return parse_conda_lock_file(path)


def packages(lock: Any, platform: str) -> dict[str, Any]:
    return {p.name: p for p in lock.package if p.platform == platform}


# --- What each variant's lock holds -------------------------------------------------------------


def test_cuda_lock_holds_cuda_builds_the_driver_allows(locked_project: Path) -> None:
    lock = parse(lockfile_path(locked_project, Variant.cuda))
    assert lock.metadata.platforms == ["linux-64", "linux-aarch64"]
    for platform in lock.metadata.platforms:
        pkgs = packages(lock, platform)
        torch = pkgs["pytorch"]
        assert torch.build.startswith("cuda129_"), torch.build
        assert torch.version == "2.13.0"
        assert "__cuda" in torch.dependencies
        # __cuda 12.9 (envs/cuda.yml) allows cuda-version 12.x only: cuda-version 13.0
        # constrains __cuda >=13.
        assert pkgs["cuda-version"].version == "12.9"
        assert pkgs["torchvision"].build.startswith("cuda129_")
        assert "pytorch-gpu" in pkgs and "pytorch-cpu" not in pkgs
        assert pkgs["python"].version.startswith("3.12.")
    assert packages(lock, "linux-64")["pytorch"].build.startswith("cuda129_mkl_")
    assert packages(lock, "linux-aarch64")["pytorch"].build.startswith("cuda129_generic_")


def test_cpu_lock_holds_no_cuda_build_on_any_platform(locked_project: Path) -> None:
    lock = parse(lockfile_path(locked_project, Variant.cpu))
    assert lock.metadata.platforms == ["linux-64", "linux-aarch64", "osx-arm64"]
    for platform in lock.metadata.platforms:
        pkgs = packages(lock, platform)
        assert pkgs["pytorch"].build.startswith("cpu_"), (platform, pkgs["pytorch"].build)
        assert "cuda-version" not in pkgs and "pytorch-gpu" not in pkgs
        for package in pkgs.values():
            assert "cuda" not in package.build, (platform, package.name, package.build)
            assert "__cuda" not in package.dependencies, (platform, package.name)


def test_mps_lock_is_osx_arm64_only_with_its_build(locked_project: Path) -> None:
    lock = parse(lockfile_path(locked_project, Variant.mps))
    assert lock.metadata.platforms == ["osx-arm64"]
    assert {p.platform for p in lock.package} == {"osx-arm64"}
    torch = packages(lock, "osx-arm64")["pytorch"]
    assert torch.url.split("/")[-2] == "osx-arm64"
    assert torch.build.startswith("cpu_generic_")
    assert torch.dependencies["__osx"] == ">=12.0"


def test_noarch_packages_are_listed_per_platform_with_noarch_urls(locked_project: Path) -> None:
    lock = parse(lockfile_path(locked_project, Variant.cpu))
    for platform in lock.metadata.platforms:
        filelock = packages(lock, platform)["filelock"]
        assert "/noarch/filelock-3.20.0-pyhd8ed1ab_0.tar.bz2" in filelock.url
        assert len(filelock.hash.sha256) == 64 and len(filelock.hash.md5) == 32


def test_cuda_13_picks_cuda130_builds(project: Path, channel_url: str) -> None:
    result = lock_variant(project, Variant.cuda, channels=[channel_url], cuda="13.0")
    assert result.cuda == "13.0"
    lock = parse(result.path)
    for platform in VARIANT_PLATFORMS[Variant.cuda]:
        pkgs = packages(lock, platform)
        assert pkgs["pytorch"].build.startswith("cuda130_")
        assert pkgs["cuda-version"].version == "13.0"
    assert "__cuda=13.0=0" in result.platforms[0].virtual_packages


def test_result_reports_packages_and_pytorch_build(locked_project: Path, channel_url: str) -> None:
    copy = Path(shutil.copytree(locked_project, locked_project.parent.parent / "copy-result"))
    result = lock_variant(copy, Variant.cuda, channels=[channel_url])
    linux = result.platforms[0]
    assert (linux.platform, linux.packages, linux.cuda_version) == ("linux-64", 10, "12.9")
    assert linux.pytorch is not None and linux.pytorch.startswith("2.13.0 cuda129_mkl_py312_")
    assert result.changed is False  # same spec, same repodata: the file is left as it was


# --- conda-lock compatibility -------------------------------------------------------------------


def test_lockfiles_are_valid_conda_lock_files(locked_project: Path) -> None:
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1

    for variant in Variant:
        path = lockfile_path(locked_project, variant)
        data = yaml.safe_load(path.read_text())
        assert data["version"] == 1
        LockfileV1.model_validate(data)  # the on-disk schema conda-lock 4 writes and reads
        lock = parse(path)
        assert set(lock.metadata.content_hash) == set(VARIANT_PLATFORMS[variant])
        assert lock.metadata.time_metadata is None  # nothing that changes from run to run
        assert lock.metadata.sources == ["../base.yml", f"../{variant.value}.yml"]
        assert all(p.categories == {"main"} for p in lock.package)


def test_conda_lock_render_explicit(locked_project: Path, tmp_path: Path) -> None:
    """``conda-lock render`` needs no conda executable: run the real CLI on our file."""
    lockfile = lockfile_path(locked_project, Variant.cuda)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "conda_lock", "render", "--kind", "explicit"),
            *("-p", "linux-64", "-p", "linux-aarch64", str(lockfile)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    explicit = (tmp_path / "conda-linux-64.lock").read_text().splitlines()
    assert "@EXPLICIT" in explicit
    urls = [line for line in explicit if line.startswith("file://")]
    lock = parse(lockfile)
    assert len(urls) == len(packages(lock, "linux-64"))
    torch = packages(lock, "linux-64")["pytorch"]
    assert f"{torch.url}#{torch.hash.md5}" in urls
    assert (tmp_path / "conda-linux-aarch64.lock").is_file()


def test_content_hash_is_the_one_conda_lock_computes(locked_project: Path, tmp_path: Path) -> None:
    """The same hash conda-lock gets from ``-f base.yml -f cuda.yml --virtual-package-spec``."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.lookup import DEFAULT_MAPPING_URL
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    from setup_tool.lock import load_spec

    for variant in Variant:
        spec = load_spec(locked_project, variant)
        lock = parse(lockfile_path(locked_project, variant))
        vp_file = tmp_path / f"{variant.value}-virtual-packages.yml"
        vp_file.write_text(
            yaml.safe_dump(
                {
                    "subdirs": {
                        platform: {
                            "packages": {
                                vp.name: vp.version
                                if vp.build == "0"
                                else f"{vp.version} {vp.build}"
                                for vp in spec.virtual_packages[platform]
                            }
                        }
                        for platform in spec.platforms
                    }
                }
            )
        )
        conda_lock_spec = make_lock_spec(
            src_files=list(spec.files),
            channel_overrides=[c.url for c in lock.metadata.channels],
            mapping_url=DEFAULT_MAPPING_URL,
        )
        repo = virtual_package_repo_from_specification(vp_file)
        try:
            assert compute_content_hashes(conda_lock_spec, repo) == lock.metadata.content_hash
        finally:  # conda-lock removes it at exit, which the test session skips (conftest.py)
            shutil.rmtree(repo.base_path, ignore_errors=True)


# --- Determinism --------------------------------------------------------------------------------


def test_same_spec_and_repodata_give_identical_bytes(
    locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    again = Path(shutil.copytree(locked_project, tmp_path / "again"))
    for variant in Variant:
        lockfile_path(again, variant).unlink()
    lock_variants(again, list(Variant), channels=[channel_url])
    for variant in Variant:
        assert lockfile_path(again, variant).read_bytes() == (
            lockfile_path(locked_project, variant).read_bytes()
        ), variant


def test_lock_is_the_same_over_http_except_urls(
    locked_project: Path, project: Path, http_channel_url: str, channel_url: str
) -> None:
    result = lock_variant(project, Variant.cpu, channels=[http_channel_url])
    over_http = parse(result.path)
    over_file = parse(lockfile_path(locked_project, Variant.cpu))
    assert [(p.name, p.platform, p.build, p.hash) for p in over_http.package] == [
        (p.name, p.platform, p.build, p.hash) for p in over_file.package
    ]
    assert all(p.url.startswith(http_channel_url + "/") for p in over_http.package)


# --- check_lock ---------------------------------------------------------------------------------


def test_check_flips_to_stale_after_a_spec_edit_and_back_after_relock(
    locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "edit"))
    assert check_lock(root, Variant.cpu, channels=[channel_url]).up_to_date

    cpu_yml = root / "envs" / "cpu.yml"
    cpu_yml.write_text(cpu_yml.read_text().replace("  - pytorch-cpu", "  - pytorch-cpu=2.12"))
    result = check_lock(root, Variant.cpu, channels=[channel_url])
    assert not result.up_to_date
    assert result.stale_platforms == ("linux-64", "linux-aarch64", "osx-arm64")
    assert {p.state for p in result.platforms} == {"stale"}
    assert result.refresh == f"setup-tool lock --variant cpu --channel {channel_url}"
    assert check_lock(root, Variant.cuda, channels=[channel_url]).up_to_date  # cuda untouched

    relocked = lock_variant(root, Variant.cpu, channels=[channel_url])
    assert relocked.changed
    assert check_lock(root, Variant.cpu, channels=[channel_url]).up_to_date
    assert parse(relocked.path).package[0].platform  # still a parseable lock
    assert all(p.version == "2.12.1" for p in parse(relocked.path).package if p.name == "pytorch")


def test_check_depends_on_channel_and_cuda(locked_project: Path, channel_url: str) -> None:
    assert check_lock(locked_project, Variant.cuda, channels=[channel_url]).up_to_date
    # Locked from the local channel (an override): checked against it unless told otherwise.
    recorded = check_lock(locked_project, Variant.cuda, environ={})
    assert recorded.up_to_date
    assert recorded.channels is not None and recorded.channels.kind == "lockfile"
    assert recorded.channels.source == "envs/locks/cuda.conda-lock.yml"
    assert check_lock(
        locked_project, Variant.cuda, environ={"SETUP_TOOL_CHANNEL": channel_url}
    ).up_to_date
    # Against conda-forge it is not current: the spec is the same, the channels are not.
    other = check_lock(locked_project, Variant.cuda, channels=["conda-forge"], environ={})
    assert [(p.platform, p.state) for p in other.platforms] == [
        ("linux-64", "channels"),
        ("linux-aarch64", "channels"),
    ]
    assert other.locked_channels == (channel_url,)
    assert other.refresh == "setup-tool lock --variant cuda"  # conda-forge is the spec's
    other_cuda = check_lock(locked_project, Variant.cuda, channels=[channel_url], cuda="13.0")
    assert other_cuda.stale_platforms == ("linux-64", "linux-aarch64")
    assert other_cuda.refresh.endswith("--cuda 13.0")


def test_check_missing_lock_and_missing_platform(
    project: Path, channel_url: str, tmp_path: Path
) -> None:
    missing = check_lock(project, Variant.cuda, channels=[channel_url])
    assert missing.problem == "missing" and not missing.up_to_date
    assert missing.stale_platforms == ("linux-64", "linux-aarch64")

    lock_variant(project, Variant.cuda, channels=[channel_url], platforms=["linux-64"])
    partial = check_lock(project, Variant.cuda, channels=[channel_url])
    assert [(p.platform, p.state) for p in partial.platforms] == [
        ("linux-64", "current"),
        ("linux-aarch64", "missing"),
    ]
    assert partial.refresh == (
        f"setup-tool lock --variant cuda --platform linux-aarch64 --channel {channel_url}"
    )


def test_check_reports_an_unreadable_lock(project: Path, channel_url: str) -> None:
    path = lockfile_path(project, Variant.mps)
    path.parent.mkdir(parents=True)
    path.write_text("version: 1\nmetadata: [not, a, mapping\n")
    result = check_lock(project, Variant.mps, channels=[channel_url])
    assert not result.up_to_date
    assert result.problem is not None and result.problem.startswith("unreadable:")


def test_check_flags_a_platform_dropped_from_the_spec(
    locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "drop"))
    cpu_yml = root / "envs" / "cpu.yml"
    cpu_yml.write_text(cpu_yml.read_text().replace("  - osx-arm64\n", ""))
    result = check_lock(root, Variant.cpu, channels=[channel_url])
    assert [(p.platform, p.state) for p in result.platforms] == [
        ("linux-64", "current"),
        ("linux-aarch64", "current"),
        ("osx-arm64", "extra"),
    ]
    assert "--platform" not in result.refresh


# --- --platform ---------------------------------------------------------------------------------


def test_relocking_one_platform_keeps_the_others(
    locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "one"))
    before = parse(lockfile_path(root, Variant.cpu))
    cpu_yml = root / "envs" / "cpu.yml"
    cpu_yml.write_text(cpu_yml.read_text().replace("  - pytorch-cpu", "  - pytorch-cpu=2.12"))

    result = lock_variant(root, Variant.cpu, channels=[channel_url], platforms=["osx-arm64"])
    assert [(p.platform, p.solved) for p in result.platforms] == [
        ("linux-64", False),
        ("linux-aarch64", False),
        ("osx-arm64", True),
    ]
    after = parse(result.path)
    assert packages(after, "osx-arm64")["pytorch"].version == "2.12.1"
    assert packages(after, "linux-64") == packages(before, "linux-64")
    assert after.metadata.content_hash["linux-64"] == before.metadata.content_hash["linux-64"]
    check = check_lock(root, Variant.cpu, channels=[channel_url])
    assert check.stale_platforms == ("linux-64", "linux-aarch64")
    assert "--platform linux-64 --platform linux-aarch64" in check.refresh


def test_unknown_platform_and_platform_outside_the_variant(project: Path, channel_url: str) -> None:
    with pytest.raises(UsageError, match=r"unknown platform 'win-64' \(valid: linux-64, "):
        lock_variant(project, Variant.cpu, channels=[channel_url], platforms=["win-64"])
    with pytest.raises(UsageError, match="the mps variant is not locked for linux-64"):
        lock_variant(project, Variant.mps, channels=[channel_url], platforms=["linux-64"])
    results = lock_variants(project, list(Variant), channels=[channel_url], platforms=["osx-arm64"])
    assert [r.variant for r in results] == [Variant.mps, Variant.cpu]


# --- Failures leave the lockfile alone ----------------------------------------------------------


def test_unsatisfiable_spec_explains_and_keeps_the_old_lock(
    locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "unsat"))
    before = lockfile_path(root, Variant.cpu).read_bytes()
    base = root / "envs" / "base.yml"
    base.write_text(base.read_text().replace("python=3.12", "python=3.11"))
    with pytest.raises(SolveError) as info:
        lock_variants(root, list(Variant), channels=[channel_url])
    message = str(info.value)
    assert "cannot be solved for" in message
    assert "No candidates were found for python 3.11.*" in message
    assert len(message.splitlines()) <= 30
    for variant in Variant:  # nothing was written, not even the variants solved before
        assert lockfile_path(root, variant).read_bytes() == (
            lockfile_path(locked_project, variant).read_bytes()
        )
    assert lockfile_path(root, Variant.cpu).read_bytes() == before
    assert not list((root / "envs" / "locks").glob(".*.tmp"))


def test_conflict_explanation_names_the_conflict(project: Path, channel_url: str) -> None:
    cuda_yml = project / "envs" / "cuda.yml"
    cuda_yml.write_text(cuda_yml.read_text().replace("  - pytorch=*=cuda*", "  - pytorch-cpu"))
    with pytest.raises(SolveError) as info:
        lock_variant(project, Variant.cuda, channels=[channel_url])
    explanation = info.value.explanation
    assert "pytorch-gpu *" in explanation and "pytorch-cpu *" in explanation
    assert "pytorch-gpu <0.0a0, which conflicts" in explanation
    assert info.value.hint and "--cuda" in info.value.hint
    assert not lockfile_path(project, Variant.cuda).exists()


SOLVER_TEXT = """Cannot solve the request because of: The following packages are incompatible
├─ numpy * can be installed with any of the following options:
│  └─ numpy 2.3.5
├─ pytorch-gpu * can be installed with any of the following options:
│  └─ pytorch-gpu 2.12.1 | 2.13.0
└─ pytorch-cpu * cannot be installed because there are no viable options:
   ├─ pytorch-cpu 2.13.0 would require
   │  └─ pytorch ==2.13.0 cpu*102, which cannot be installed because there are no viable options:
   │     └─ pytorch 2.13.0 would constrain
   │        └─ pytorch-gpu <0.0a0, which conflicts with any installable versions previously reported
   └─ pytorch-cpu 2.12.1 would require
      ├─ libfoo 1.0 would require
      │  └─ libbar >=2, which can be installed
      └─ pytorch ==2.12.1 cpu_mkl*100, for which no candidates were found.
"""


def test_trim_explanation_keeps_the_requests_and_paths_to_conflicts() -> None:
    from setup_tool.lock.solve import trim_explanation

    trimmed = trim_explanation(SOLVER_TEXT).splitlines()
    assert trimmed[0] == "The following packages are incompatible"
    assert "├─ pytorch-gpu * can be installed with any of the following options:" in trimmed
    assert "│  └─ pytorch-gpu 2.12.1 | 2.13.0" not in trimmed  # detail without a conflict
    assert "      ├─ libfoo 1.0 would require" not in trimmed
    assert trimmed[-1].endswith("cpu_mkl*100, for which no candidates were found.")
    short = trim_explanation(SOLVER_TEXT, max_lines=4).splitlines()
    assert len(short) == 5 and short[-1].startswith("… ") and "-v" in short[-1]


def test_interrupted_write_leaves_the_old_lock(
    locked_project: Path, tmp_path: Path, channel_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "interrupt"))
    before = lockfile_path(root, Variant.cpu).read_bytes()
    cpu_yml = root / "envs" / "cpu.yml"
    cpu_yml.write_text(cpu_yml.read_text().replace("  - pytorch-cpu", "  - pytorch-cpu=2.12"))

    def interrupted(self: Path, target: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock_variant(root, Variant.cpu, channels=[channel_url])
    assert lockfile_path(root, Variant.cpu).read_bytes() == before
    assert not list((root / "envs" / "locks").glob(".*.tmp"))


def test_malformed_spec_fails_before_any_solve(project: Path, channel_url: str) -> None:
    (project / "envs" / "base.yml").write_text("dependencies:\n  - python\n  bad: [\n")
    with pytest.raises(SpecError, match=r"^envs/base.yml:\d+: malformed YAML"):
        lock_variants(project, list(Variant), channels=[channel_url])


# --- Channels -----------------------------------------------------------------------------------


def test_channel_from_environment_variable(project: Path, channel_url: str) -> None:
    result = lock_variant(project, Variant.mps, environ={"SETUP_TOOL_CHANNEL": channel_url})
    assert result.channels.source == "SETUP_TOOL_CHANNEL"
    assert [c.url for c in parse(result.path).metadata.channels] == [channel_url]


def test_channel_as_a_directory_path(project: Path, local_channel: Any) -> None:
    result = lock_variant(project, Variant.mps, channels=[str(local_channel.root)])
    assert result.channels.urls == (local_channel.url,)


@pytest.mark.parametrize(
    ("channels", "environ", "source"),
    [
        ([""], {}, "--channel"),
        (["  "], {}, "--channel"),
        (None, {"SETUP_TOOL_CHANNEL": ","}, "SETUP_TOOL_CHANNEL"),
    ],
)
def test_an_empty_channel_is_refused(
    project: Path, channels: list[str] | None, environ: dict[str, str], source: str
) -> None:
    """Not taken for the current directory (``Path("")``), nor for no channel at all."""
    with pytest.raises(UsageError, match=f"^{source}: ") as info:
        lock_variant(project, Variant.cpu, channels=channels, environ=environ)
    assert "empty" in info.value.message and info.value.hint
    assert not lockfile_path(project, Variant.cpu).exists()


@pytest.mark.parametrize(
    ("index", "needle"),
    [("", "empty"), ("https://user:secret@pypi.example/simple", "password")],
)
def test_a_bad_pip_index_is_refused_without_a_pip_section(
    project: Path, channel_url: str, index: str, needle: str
) -> None:
    """--pip-index-url is checked even when no spec has a pip section to use it for."""
    with pytest.raises(UsageError, match=needle):
        lock_variant(project, Variant.cpu, channels=[channel_url], pip_indexes=[index])
    assert not lockfile_path(project, Variant.cpu).exists()


def test_closed_port_fails_naming_the_channel(project: Path, unreachable_channel_url: str) -> None:
    with pytest.raises(ChannelUnreachable) as info:
        lock_variant(project, Variant.cpu, channels=[unreachable_channel_url])
    assert unreachable_channel_url in str(info.value)
    assert "--channel" in (info.value.hint or "")
    assert not lockfile_path(project, Variant.cpu).exists()


def test_conda_forge_unreachable_fails_clearly(project: Path) -> None:
    """The default channel (the spec's conda-forge) when conda-forge cannot be reached.

    Offline by construction on every machine: conftest points HTTPS_PROXY at a refusing
    127.0.0.1 port, so the request for conda.anaconda.org is refused, not sent.
    """
    assert os.environ["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    with pytest.raises(ChannelUnreachable) as info:
        lock_variant(project, Variant.mps, environ={})
    assert "conda-forge" in str(info.value)
    assert "connection refused" in str(info.value)
    assert "--channel" in (info.value.hint or "")
    assert not lockfile_path(project, Variant.mps).exists()


def test_missing_local_channel_is_unreachable(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ChannelUnreachable, match="does not exist"):
        lock_variant(project, Variant.cpu, channels=[(tmp_path / "nowhere").as_uri()])


def test_server_that_never_answers_times_out(project: Path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # accepts connections (the kernel does) but never answers
        url = f"http://127.0.0.1:{server.getsockname()[1]}/conda-forge"
        from setup_tool.lock import channels

        # A hang is the failure tested here: the bound is generous (the timeout is 1 s).
        start = time.monotonic()
        with pytest.raises(ChannelUnreachable, match="no answer"):
            channels.check_reachable([url], timeout=1.0)
        assert time.monotonic() - start < 30


# --- Progress events ----------------------------------------------------------------------------


def test_progress_events_carry_the_data_not_text(project: Path, channel_url: str) -> None:
    from setup_tool.lock import LockProgress, PlatformLock
    from setup_tool.lock.channels import Channels

    events: list[tuple[str, ...]] = []

    class Recorder(LockProgress):
        def locking(self, variant: Variant, platforms: Any, channels: Channels) -> None:
            events.append(("locking", variant.value, *platforms, channels.source))

        def solved(self, variant: Variant, lock: PlatformLock) -> None:
            events.append(("solved", variant.value, lock.platform, str(lock.packages)))

    lock_variants(project, [Variant.cpu, Variant.mps], channels=[channel_url], progress=Recorder())
    assert events[:2] == [
        ("locking", "cpu", "linux-64", "linux-aarch64", "osx-arm64", "--channel"),
        ("locking", "mps", "osx-arm64", "--channel"),
    ]
    solved = sorted(e[1:3] for e in events[2:])
    assert solved == [
        ("cpu", "linux-64"),
        ("cpu", "linux-aarch64"),
        ("cpu", "osx-arm64"),
        ("mps", "osx-arm64"),
    ]


def test_lock_records_where_its_channels_came_from(
    project: Path, channel_url: str, local_channel: Any, tmp_path: Path
) -> None:
    from setup_tool.lock.metadata import CUSTOM_CHANNELS_FROM

    result = lock_variant(project, Variant.mps, channels=[channel_url], environ={})
    lock = parse(result.path)
    assert [c.url for c in lock.metadata.channels] == [channel_url]
    assert lock.metadata.custom_metadata[CUSTOM_CHANNELS_FROM] == "override"
    header = result.path.read_text().split("\nversion:")[0]
    assert f"# Relock:            setup-tool lock --variant mps --channel {channel_url}" in header

    # A plain relock (no flag, no variable) stays on the recorded channel.
    mps_yml = project / "envs" / "mps.yml"
    mps_yml.write_text(mps_yml.read_text().replace("dependencies: []", "dependencies: [filelock]"))
    stale = check_lock(project, Variant.mps, environ={})
    assert stale.stale_platforms == ("osx-arm64",)
    assert stale.refresh == f"setup-tool lock --variant mps --channel {channel_url}"
    again = lock_variant(project, Variant.mps, environ={})
    assert again.channels.kind == "lockfile" and again.channels.urls == (channel_url,)
    assert parse(again.path).metadata.custom_metadata[CUSTOM_CHANNELS_FROM] == "override"

    # Another override replaces it, and is recorded in turn.
    mirror = local_channel.copy_to(tmp_path / "mirror")
    moved = lock_variant(project, Variant.mps, channels=[mirror.url], environ={})
    assert [c.url for c in parse(moved.path).metadata.channels] == [mirror.url]
    assert check_lock(project, Variant.mps, environ={}).channels.urls == (mirror.url,)  # type: ignore[union-attr]


def test_an_override_equal_to_the_spec_counts_as_the_spec(project: Path) -> None:
    from setup_tool.lock.channels import resolve_channels

    chosen = resolve_channels(["conda-forge"], ["conda-forge"], "envs/base.yml", {})
    assert (chosen.kind, chosen.source, chosen.overridden) == ("spec", "envs/base.yml", False)


def test_a_lock_without_the_key_is_checked_against_its_spec(
    locked_project: Path, tmp_path: Path
) -> None:
    """Older locks, and conda-lock's own, say nothing about overrides: the spec decides."""
    root = Path(shutil.copytree(locked_project, tmp_path / "old"))
    path = lockfile_path(root, Variant.cpu)
    path.write_text(path.read_text().replace("    setup-tool.channels-from: override\n", ""))
    result = check_lock(root, Variant.cpu, environ={})
    assert result.channels is not None and result.channels.kind == "spec"
    assert {p.state for p in result.platforms} == {"channels"}
