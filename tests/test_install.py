"""``setup-tool install`` against the local channel: fresh, no-op, upgrade, dry run, transports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from channel import LocalChannel
from conftest import Cli
from install_support import (
    Project,
    env_python_says,
    installed_numpy,
    leftovers,
    make_project,
    newer_numpy,
)

from setup_tool.install.prefix import read_state


@pytest.fixture
def project(tmp_path: Path, channel_url: str) -> Project:
    return make_project(tmp_path, channel_url)


def test_fresh_install_then_no_op(cli: Cli, project: Project) -> None:
    first = cli.ok("install", env=project.env)
    assert "installed 9 packages" in first.stderr
    assert "9 downloaded, 0 from cache" in first.stderr
    assert f"conda activate {project.prefix}" in first.stdout
    assert f"{project.prefix}/bin/python" in first.stdout

    # Installed files carry the final prefix, not the staging directory they were linked in.
    stub = (project.prefix / "bin/python").read_text()
    assert f'prefix="{project.prefix}"' in stub
    assert installed_numpy(project.prefix) == "2.3.5"
    assert env_python_says(project.prefix, "import torch; print(torch.__build__)").startswith(
        "cpu_"
    )
    state = read_state(project.prefix)
    assert state is not None
    assert state["platform"] == "linux-64"
    assert {p["name"] for p in state["packages"]} >= {"python", "pytorch", "numpy"}
    assert leftovers(project.prefix) == []

    second = cli.ok("install", env=project.env)  # scripts/bench-cli.py times this no-op
    assert "is up to date" in second.stderr
    assert (project.prefix / "bin/python").read_text() == stub


def test_conda_meta_records_the_lock_url_not_the_cache(cli: Cli, project: Project) -> None:
    cli.ok("install", env=project.env)
    records = [json.loads(p.read_text()) for p in (project.prefix / "conda-meta").glob("*.json")]
    assert len(records) == 9
    for record in records:
        assert record["url"].startswith(project.channel_url)
        assert record["channel"] == project.channel_url


def test_upgrade_after_relock(
    cli: Cli, project: Project, local_channel: LocalChannel, tmp_path: Path
) -> None:
    channel = local_channel.copy_to(tmp_path / "channel-v2")
    project.relock(channel.url)
    cli.ok("install", env=project.env)
    assert installed_numpy(project.prefix) == "2.3.5"

    # A release added to the same channel: only its file is new (fetched and hashed).
    channel.add(newer_numpy(channel))
    project.relock(channel.url)
    plan = json.loads(cli.ok("install", "--dry-run", "--json", env=project.env).stdout)
    assert [c["name"] for c in plan["plan"]["change"]] == ["numpy"]
    assert plan["plan"]["add"] == [] and plan["plan"]["remove"] == []

    result = cli.ok("install", env=project.env)
    assert "1 changed" in result.stderr
    assert "1 downloaded, 8 from cache" in result.stderr
    assert installed_numpy(project.prefix) == "2.4.0"
    assert leftovers(project.prefix) == []
    assert "is up to date" in cli.ok("install", env=project.env).stderr


def test_dry_run_writes_nothing(cli: Cli, project: Project) -> None:
    result = cli.ok("install", "--dry-run", env=project.env)
    assert "dry run: nothing written" in result.stdout
    assert "9 to add" in result.stdout
    assert "download 9 packages" in result.stdout
    assert "KiB" in result.stdout or " B)" in result.stdout  # sizes known for file:// packages
    assert not project.prefix.exists()
    assert not project.prefix.parent.exists()  # not even .envs/ or the lock file
    assert not project.cache.exists()


def test_install_over_http(cli: Cli, tmp_path: Path, http_channel_url: str) -> None:
    project = make_project(tmp_path, http_channel_url)
    result = cli.ok("install", "--json", env=project.env)
    data = json.loads(result.stdout)
    assert data["status"] == "installed"
    assert data["downloaded"] == 9
    assert installed_numpy(project.prefix) == "2.3.5"


def test_explicit_lockfile_and_prefix(cli: Cli, project: Project, tmp_path: Path) -> None:
    prefix = tmp_path / "elsewhere" / "torch-env"
    cli.ok("install", "--lockfile", str(project.lockfile), "--prefix", str(prefix), env=project.env)
    assert installed_numpy(prefix) == "2.3.5"
    assert f'prefix="{prefix}"' in (prefix / "bin/python").read_text()
    assert not project.prefix.exists()


def test_foreign_directory_at_the_prefix_is_left_untouched(cli: Cli, project: Project) -> None:
    project.prefix.mkdir(parents=True)
    precious = project.prefix / "notes.txt"
    precious.write_text("mine")
    result = cli("install", env=project.env)
    assert result.exit_code == 2
    assert "not an environment setup-tool made" in result.stderr
    assert precious.read_text() == "mine"
    assert sorted(p.name for p in project.prefix.iterdir()) == ["notes.txt"]


def test_an_empty_directory_at_the_prefix_is_used(cli: Cli, project: Project) -> None:
    project.prefix.mkdir(parents=True)
    cli.ok("install", env=project.env)
    assert installed_numpy(project.prefix) == "2.3.5"


def test_unwritable_prefix(cli: Cli, project: Project, tmp_path: Path) -> None:
    """Tests run as root, which chmod cannot stop: use a prefix whose parent is a file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("install", "--prefix", str(blocker / "env"), env=project.env)
    assert result.exit_code == 1
    assert "a-file is a file, not a directory" in result.stderr
    assert "hint:" in result.stderr
    assert not project.cache.exists()


def test_install_repairs_an_environment_that_drifted_from_its_lock(
    cli: Cli, project: Project
) -> None:
    """A package removed behind setup-tool's back (the doctor's "drift") is put back."""
    cli.ok("install", env=project.env)
    record = next((project.prefix / "conda-meta").glob("numpy-*.json"))
    record.unlink()
    result = cli.ok("install", env=project.env)
    assert "1 added" in result.stderr
    assert record.exists()
    assert "is up to date" in cli.ok("install", env=project.env).stderr
