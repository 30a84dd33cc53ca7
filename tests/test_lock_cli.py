"""``setup-tool lock`` as a user runs it: output, one-line errors, exit codes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from channel import LocalChannel
from conftest import Cli

from setup_tool.cli.lock import Subdir
from setup_tool.errors import ExitCode
from setup_tool.variants import SUPPORTED_SUBDIRS


def env_for(root: Path) -> dict[str, str]:
    return {"SETUP_TOOL_PROJECT": str(root), "SETUP_TOOL_CACHE": str(root / ".cache")}


def test_platform_choices_are_the_supported_subdirs() -> None:
    assert tuple(s.value for s in Subdir) == SUPPORTED_SUBDIRS


def test_lock_all_prints_progress_and_summary(cli: Cli, project: Path, channel_url: str) -> None:
    result = cli.ok("lock", "--variant", "all", "--channel", channel_url, env=env_for(project))
    out = result.stdout
    assert re.search(r"^cuda +linux-64 +10 +2\.13\.0 cuda129_mkl_py312_h\w+_302 +12\.9 ", out, re.M)
    assert re.search(r"^cpu +osx-arm64 +9 +2\.13\.0 cpu_generic_py312_h\w+_2 +- ", out, re.M)
    assert out.count("(written)") == 6
    err = result.stderr
    assert (
        f"==> locking cuda for linux-64, linux-aarch64 from {channel_url} (from --channel)" in err
    )
    assert len(re.findall(r"^    (cuda|mps|cpu) [\w-]+: \d+ packages, pytorch ", err, re.M)) == 6
    assert "locked 3 variants (6 platforms solved)" in err
    for variant in ("cuda", "mps", "cpu"):
        assert (project / "envs" / "locks" / f"{variant}.conda-lock.yml").is_file()

    again = cli.ok("lock", "--channel", channel_url, env=env_for(project))
    assert again.stdout.count("(unchanged)") == 6


def test_check_exit_codes_and_refresh_command(cli: Cli, project: Path, channel_url: str) -> None:
    env = env_for(project)
    missing = cli("lock", "--variant", "cuda", "--check", "--channel", channel_url, env=env)
    assert missing.exit_code == ExitCode.LOCK_STALE == 4
    assert "✗ cuda: envs/locks/cuda.conda-lock.yml: missing" in missing.stdout
    assert f"refresh with: setup-tool lock --variant cuda --channel {channel_url}" in missing.stdout

    cli.ok("lock", "--variant", "cuda", "--channel", channel_url, env=env)
    fresh = cli.ok("lock", "--variant", "cuda", "--check", "--channel", channel_url, env=env)
    assert "✓ cuda: envs/locks/cuda.conda-lock.yml is up to date (linux-64, linux-aarch64)" in (
        fresh.stdout
    )

    base = project / "envs" / "base.yml"
    base.write_text(base.read_text().replace("  - numpy\n", "  - numpy>=2\n"))
    stale = cli("lock", "--variant", "cuda", "--check", "--channel", channel_url, env=env)
    assert stale.exit_code == 4
    assert (
        "✗ cuda: envs/locks/cuda.conda-lock.yml: stale (the spec changed since it was locked): "
        "linux-64, linux-aarch64"
    ) in stale.stdout


def test_check_with_channel_from_environment(
    cli: Cli, locked_project: Path, channel_url: str
) -> None:
    env = {**env_for(locked_project), "SETUP_TOOL_CHANNEL": channel_url}
    result = cli.ok("lock", "--check", env=env)
    assert result.stdout.count("is up to date") == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--variant", "rocm"], "'rocm' is not one of 'cuda', 'mps', 'cpu', 'all'"),
        (
            ["--platform", "win-64"],
            "'win-64' is not one of 'linux-64', 'linux-aarch64', 'osx-arm64'",
        ),
        (
            ["--variant", "cpu", "--cuda", "12.9"],
            "--cuda applies to the cuda variant only, not cpu",
        ),
        (["--variant", "cuda", "--cuda", "twelve"], "--cuda 'twelve' is not a CUDA version"),
        (
            ["--variant", "mps", "--platform", "linux-64"],
            "the mps variant is not locked for linux-64",
        ),
        (["--channel", "ftp://mirror/conda-forge"], "unsupported scheme 'ftp'"),
    ],
    ids=["variant", "platform", "cuda-on-cpu", "cuda-format", "platform-of-variant", "scheme"],
)
def test_bad_flags_are_one_line_with_choices(
    cli: Cli, project: Path, args: list[str], expected: str
) -> None:
    result = cli("lock", *args, env=env_for(project))
    assert result.exit_code == ExitCode.USAGE
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: ")


def test_malformed_spec_names_file_and_line(cli: Cli, project: Path, channel_url: str) -> None:
    (project / "envs" / "mps.yml").write_text("platforms: [osx-arm64\ndependencies: []\n")
    result = cli("lock", "--variant", "mps", "--channel", channel_url, env=env_for(project))
    assert result.exit_code == ExitCode.USAGE
    assert re.match(r"error: envs/mps\.yml:\d+: malformed YAML", result.stderr)


def test_unknown_key_is_one_line(cli: Cli, project: Path, channel_url: str) -> None:
    base = project / "envs" / "base.yml"
    text = base.read_text()
    base.write_text(text + "prefix: /opt/env\n")
    result = cli("lock", "--channel", channel_url, env=env_for(project))
    assert result.exit_code == ExitCode.USAGE
    first = result.stderr.splitlines()[0]
    line = len(text.splitlines()) + 1
    assert first == (
        f"error: envs/base.yml:{line}: unknown key 'prefix' (valid keys: allow-pypi-requests, "
        "channels, dependencies, name, pip-repositories, platforms, virtual-packages)"
    )


def test_unsatisfiable_spec_shows_the_solver_reason(
    cli: Cli, locked_project: Path, tmp_path: Path, channel_url: str
) -> None:
    root = Path(shutil.copytree(locked_project, tmp_path / "unsat"))
    before = (root / "envs" / "locks" / "cpu.conda-lock.yml").read_bytes()
    cpu = root / "envs" / "cpu.yml"
    cpu.write_text(cpu.read_text().replace("pytorch-cpu", "pytorch-cpu>=3"))
    result = cli("lock", "--variant", "cpu", "--channel", channel_url, env=env_for(root))
    assert result.exit_code == ExitCode.ERROR
    assert "error: the cpu spec cannot be solved for linux-64" in result.stderr
    assert "No candidates were found for pytorch-cpu >=3" in result.stderr
    assert "hint: loosen the pins" in result.stderr
    assert (root / "envs" / "locks" / "cpu.conda-lock.yml").read_bytes() == before


def test_unreachable_channel_is_named_with_a_hint(
    cli: Cli, project: Path, unreachable_channel_url: str
) -> None:
    result = cli(
        "lock", "--variant", "cpu", "--channel", unreachable_channel_url, env=env_for(project)
    )
    assert result.exit_code == ExitCode.ERROR
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: cannot reach channel {unreachable_channel_url}: connection refused"
    assert "--channel" in lines[1]


def test_installed_script_locks_all_variants(project: Path, channel_url: str) -> None:
    """The real console script in a subprocess (scripts/bench-cli.py times this command)."""
    script = Path(sys.executable).with_name("setup-tool")
    env = {**os.environ, **env_for(project)}
    done = subprocess.run(
        [str(script), "lock", "--variant", "all", "--channel", channel_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(written)") == 6


def test_check_names_both_channels_when_only_they_differ(
    cli: Cli, locked_project: Path, channel_url: str, local_channel: LocalChannel, tmp_path: Path
) -> None:
    # No flag, no variable: checked against the channel the lock records.
    plain = cli.ok("lock", "--variant", "cpu", "--check", env=env_for(locked_project))
    assert "✓ cpu: envs/locks/cpu.conda-lock.yml is up to date" in plain.stdout

    mirror = local_channel.copy_to(tmp_path / "mirror").url
    args = ("lock", "--variant", "cpu", "--check", "--channel", mirror)
    other = cli(*args, env=env_for(locked_project))
    assert other.exit_code == ExitCode.LOCK_STALE
    assert (
        f"✗ cpu: envs/locks/cpu.conda-lock.yml: locked from {channel_url}; checking against "
        f"{mirror} (from --channel): linux-64, linux-aarch64, osx-arm64"
    ) in other.stdout
    assert "the spec changed" not in other.stdout
    assert f"refresh with: setup-tool lock --variant cpu --channel {mirror}" in other.stdout
    assert (
        f"or check against its own channels: setup-tool lock --variant cpu --check "
        f"--channel {channel_url}"
    ) in other.stdout
    assert f"relocking needs {mirror} (from --channel)" in other.stderr


def test_refresh_from_the_environment_variable_names_the_channel(
    cli: Cli, project: Path, channel_url: str
) -> None:
    env = {**env_for(project), "SETUP_TOOL_CHANNEL": channel_url}
    result = cli("lock", "--variant", "mps", "--check", env=env)
    assert result.exit_code == ExitCode.LOCK_STALE
    assert f"refresh with: setup-tool lock --variant mps --channel {channel_url}" in result.stdout


@pytest.mark.parametrize("form", ["url", "path"])
def test_missing_local_channel_says_the_path_does_not_exist(
    cli: Cli, project: Path, tmp_path: Path, form: str
) -> None:
    missing = tmp_path / "nonexistent"
    given = missing.as_uri() if form == "url" else str(missing)
    result = cli("lock", "--variant", "cpu", "--channel", given, env=env_for(project))
    assert result.exit_code == ExitCode.ERROR
    error, hint = result.stderr.strip().splitlines()
    assert error == f"error: channel {missing.as_uri()}: {missing} does not exist"
    assert hint.startswith("hint: check the path") and "PROXY" not in hint


def test_env_after_a_mirror_lock_needs_no_channel_again(
    cli: Cli, project: Path, channel_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: once locked from a mirror, every later `make env` needed the variable again."""
    monkeypatch.setenv("SETUP_TOOL_PROJECT", str(project))
    monkeypatch.setenv("SETUP_TOOL_VARIANT", "cpu")
    cli.ok("env", "--channel", channel_url, "--no-doctor")
    plain = cli.ok("env", "--no-doctor")
    assert "lock: envs/locks/cpu.conda-lock.yml is up to date" in plain.stderr

    cpu = project / "envs" / "cpu.yml"
    cpu.write_text(cpu.read_text().replace("  - pytorch-cpu", "  - pytorch-cpu=2.12"))
    relocked = cli.ok("env", "--no-doctor")  # relocks from the recorded channel, not conda-forge
    assert "is stale for linux-64, linux-aarch64, osx-arm64; locking" in relocked.stderr
    assert f"from {channel_url} (from envs/locks/cpu.conda-lock.yml)" in relocked.stderr
