"""``setup-tool install`` on the happy paths, beyond test_install.py: the no-op timed in a fresh
process, a relocked lock with the same packages, an upgrade seen by the doctor's drift check,
``--dry-run`` writing nothing anywhere (HOME included) over an existing environment, the
project found from a sub-folder, awkward prefixes, --category, a relative cache, the bars."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from channel import LocalChannel, _pytorch, _pytorch_metapackages, _torchvision
from conftest import Cli
from install_helpers import (
    Entry,
    assert_env_matches,
    cli_env,
    env_torch,
    installed,
    lock_project,
    locked_builds,
    run_install,
    snapshot,
    state,
)

from setup_tool.doctor.drift import check_drift


def install_json(cli: Cli, lockfile: Path, prefix: Path, *more: str) -> dict:
    result = cli.ok(
        "install", "--lockfile", str(lockfile), "--prefix", str(prefix), "--json", *more
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_noop_says_up_to_date_in_a_fresh_process(cli: Cli, cpu_lock: Path, tmp_path: Path) -> None:
    """The no-op path touches nothing (how fast it is: scripts/bench-cli.py, not a test)."""
    prefix = tmp_path / "env"
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix))
    before = snapshot(prefix, tmp_path / "cache")
    env = cli_env(tmp_path / "cache")
    done = run_install(cpu_lock, prefix, env)
    assert done.returncode == 0, done.stderr
    match = re.search(
        r"✓ (\S+) is up to date with cpu.conda-lock.yml \((\d+\.\d\d) s\)", done.stderr
    )
    assert match and match.group(1) == str(prefix), done.stderr
    assert "fetching" not in done.stderr and "linking" not in done.stderr
    assert snapshot(prefix, tmp_path / "cache") == before


def test_same_packages_from_a_rewritten_lock_only_record_it(
    cli: Cli, cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix))
    rewritten = tmp_path / "cpu.conda-lock.yml"
    rewritten.write_text("# reformatted by hand\n" + cpu_lock.read_text())
    files_before = _without_state(snapshot(prefix))

    second = install_json(cli, rewritten, prefix)
    assert second["status"] == "up-to-date"
    assert state(prefix)["lockfile"] == str(rewritten)
    assert _without_state(snapshot(prefix)) == files_before
    assert_env_matches(prefix, rewritten)
    third = install_json(cli, rewritten, prefix)  # now the fast path: the state file matches
    assert third["status"] == "up-to-date" and third["plan"]["download"]["packages"] == 0


def _without_state(entries: dict[str, Entry]) -> dict[str, Entry]:
    """Everything but the state file and the conda-meta directory (whose mtime it changes)."""
    return {k: v for k, v in entries.items() if not k.endswith(("conda-meta", ".state"))}


def test_upgrade_after_relock(cli: Cli, tmp_path: Path, local_channel: LocalChannel) -> None:
    channel = local_channel.copy_to(tmp_path / "channel")
    project = tmp_path / "project"
    lockfile = lock_project(project, channel.url)
    prefix = project / ".envs" / "cpu"
    env = {"SETUP_TOOL_PROJECT": str(project)}
    cli.ok("install", "--variant", "cpu", env=env)  # the default lock and prefix of the project
    assert_env_matches(prefix, lockfile)
    old = locked_builds(lockfile)

    # PyTorch 2.14.0 is released: a new pytorch, its torchvision and metapackage. Relock.
    channel.add(
        _pytorch("linux-64", "3.12", "2.14.0", 0)
        + _torchvision("linux-64", "3.12", "0.29.0", "2.14.0")
        + _pytorch_metapackages("linux-64", "2.14.0", 0)
    )
    lock_project(project, channel.url)
    new = locked_builds(lockfile)
    assert new["pytorch"].startswith("2.14.0 cpu_mkl_py312_")
    changed = sorted(name for name in new if new[name] != old[name])
    assert changed == ["pytorch", "pytorch-cpu", "torchvision"]
    # `setup-tool doctor` finds the lock through the state file and sees the drift. (Its probe
    # fails on the channel's stand-in torch, so only its lock check is looked at.)
    doctor = cli("doctor", "--prefix", str(prefix), "--json", env=env)
    (lock_check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["id"] == "lock"]
    assert lock_check["status"] == "fail", lock_check
    assert f"pytorch {old['pytorch']} (locked {new['pytorch']})" in lock_check["detail"]
    drift = check_drift(prefix, project)
    assert drift.state == "drifted"
    assert sorted(c.locked.name for c in drift.changed) == changed

    dry = cli.ok("install", "--variant", "cpu", "--dry-run", env=env)
    for name in changed:
        assert f"~ {name} {old[name]} → {new[name]}" in dry.stdout
    assert "0 to add, 3 to change, 0 to remove, 6 unchanged; download 3 packages" in dry.stdout

    result = cli.ok("install", "--variant", "cpu", env=env)
    assert "(0 added, 3 changed, 0 removed; 3 downloaded, 6 from cache)" in result.stderr
    assert_env_matches(prefix, lockfile)
    torch = env_torch(prefix)
    assert (torch["version"], torch["torchvision"]) == ("2.14.0", "0.29.0")
    # The old builds are gone from the environment, not merely shadowed.
    names = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    assert not any(n.startswith(("pytorch-2.13.0-", "torchvision-0.28.0-")) for n in names)
    assert "2.13.0" not in (prefix / "lib/python3.12/site-packages/torch/__init__.py").read_text()
    assert check_drift(prefix, project).state == "clean"


def test_dry_run_writes_nothing(
    cli: Cli, cpu_lock: Path, locked_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    prefix = tmp_path / "envs" / "cpu"
    before = snapshot(tmp_path, locked_project)

    fresh = cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix), "--dry-run")
    assert f"Plan for {prefix} (linux-64, dry run: nothing written)" in fresh.stdout
    assert "+ pytorch=2.13.0=cpu_mkl_py312_" in fresh.stdout
    size = re.search(r"9 to add, 0 to change, 0 to remove, 0 unchanged; download 9 packages "
                     r"\((\d+\.\d) KiB\)", fresh.stdout)  # fmt: skip
    assert size, fresh.stdout
    assert snapshot(tmp_path, locked_project) == before
    assert not (tmp_path / "cache").exists() and not prefix.parent.exists()

    # Over an existing environment: the plan against it, and still nothing written.
    cuda_lock = locked_project / "envs" / "locks" / "cuda.conda-lock.yml"
    cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(prefix))
    before = snapshot(tmp_path, locked_project)
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.9")  # a driver new enough for the lock
    plan = install_json(cli, cuda_lock, prefix, "--dry-run")
    assert plan["status"] == "dry-run"
    assert sorted(plan["plan"]["add"])[0].startswith("cuda-version=12.9=")
    assert plan["plan"]["remove"] == ["pytorch-cpu"]
    assert {c["name"] for c in plan["plan"]["change"]} == {"pytorch", "torchvision"}
    assert snapshot(tmp_path, locked_project) == before


def test_default_prefix_is_dot_envs_variant(
    cli: Cli, locked_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    shutil.copytree(locked_project / "envs", project / "envs")
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # the project is found upward from the working directory
    cli.ok("install", "--variant", "cpu")
    assert_env_matches(project / ".envs" / "cpu", project / "envs/locks/cpu.conda-lock.yml")
    assert installed(project / ".envs" / "cpu")["pytorch"].startswith("2.13.0 cpu_")


def test_prefix_with_spaces_and_dotdot(cli: Cli, cpu_lock: Path, tmp_path: Path) -> None:
    given = tmp_path / "my envs" / "not-made" / ".." / "ünï env"
    result = cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", str(given))
    prefix = tmp_path / "my envs" / "ünï env"  # `..` collapsed before it reaches any file
    assert_env_matches(prefix, cpu_lock)
    assert not (tmp_path / "my envs" / "not-made").exists()
    # The advice is meant to be pasted into a shell.
    assert f"conda activate '{prefix}'" in result.stdout
    assert f"run its Python directly: '{prefix}/bin/python'" in result.stdout


def test_extra_categories_come_on_top_of_main(cli: Cli, cpu_lock: Path, tmp_path: Path) -> None:
    # matplotlib-base made a dev-only package, the way conda-lock marks dev dependencies.
    blocks = cpu_lock.read_text().split("\n- name: ")
    marked = [
        b.replace("category: main", "category: dev") if b.startswith("matplotlib-base\n") else b
        for b in blocks
    ]
    lockfile = tmp_path / "cpu.conda-lock.yml"
    lockfile.write_text("\n- name: ".join(marked))
    prefix = tmp_path / "env"

    main = install_json(cli, lockfile, prefix)
    assert main["plan"]["add"] and "matplotlib-base" not in installed(prefix)
    assert state(prefix)["categories"] == ["main"]

    with_dev = install_json(cli, lockfile, prefix, "--category", "dev")
    # main stays (as with conda-lock install --dev): only the dev package is added.
    assert [s.split("=")[0] for s in with_dev["plan"]["add"]] == ["matplotlib-base"]
    assert with_dev["plan"]["remove"] == [] and with_dev["downloaded"] == 1
    assert len(installed(prefix)) == 9 and env_torch(prefix)["version"] == "2.13.0"
    assert state(prefix)["categories"] == ["dev", "main"]
    assert check_drift(prefix, tmp_path).state == "clean"


def test_relative_cache_and_prefix(
    cli: Cli, cpu_lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SETUP_TOOL_CACHE", "cache")  # relative, as a user may write it
    result = cli.ok("install", "--lockfile", str(cpu_lock), "--prefix", "env", "--json")
    assert json.loads(result.stdout)["prefix"] == str(tmp_path / "env")
    assert_env_matches(tmp_path / "env", cpu_lock)
    # The cache is where the relative path says: py-rattler's extracted packages and the
    # stamps of the 9 file:// archives, hashed in place (not copied: they are local).
    assert len(list((tmp_path / "cache" / "stamps" / "files").iterdir())) == 9
    assert len([p for p in (tmp_path / "cache" / "rattler").iterdir() if p.is_dir()]) == 9


def test_progress_bars_on_a_terminal(cpu_lock: Path, tmp_path: Path) -> None:
    """The rich bars (download in bytes from worker threads, link in packages) on a terminal."""
    import io

    from rich.console import Console

    from setup_tool.cli.install import RichInstallProgress
    from setup_tool.cli.terminal import Terminal
    from setup_tool.detect import detect
    from setup_tool.install import install
    from setup_tool.install.request import install_request

    screen = io.StringIO()
    terminal = Terminal(stderr=Console(file=screen, force_terminal=True, width=100))
    assert terminal.interactive
    request = install_request(detect(), lockfile=cpu_lock, prefix=tmp_path / "env")
    result = install(request, RichInstallProgress(terminal))
    assert result.status == "installed" and result.downloaded == 9
    drawn = screen.getvalue()
    assert "download" in drawn and re.search(r"link .*9/9", drawn), drawn[-2000:]
    assert_env_matches(tmp_path / "env", cpu_lock)
