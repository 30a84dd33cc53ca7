"""Real conda-lock files with ``manager: pip`` entries (``../shared/realworld-locks/``, copied
byte for byte from public repositories): each gets the right verdict, offline.

- poprox-cpu (linux-64): 2 pip entries, ``progress-api`` a wheel and ``poprox-concepts`` a
  ``git+https://`` checkout. The machine check passes; the install is refused, naming the
  source entry (it would have to be built).
- eotles-gpu (linux-64): 16 pure-Python wheels on the retired pytorch channel's CUDA 12.4
  build. Refused on a machine without a driver for the conda part; fits with a 12.4 driver.
- atm-openmm (linux-64): 22 pip entries, all in ``dev``; simplejson is a ``cp310`` manylinux
  wheel for the lock's Python 3.10. ``main`` installs none; ``--category dev`` plans all 22.

A dry run contacts no server; should that change, HTTPS goes to a proxy on a 127.0.0.1 port
that refuses, so these tests stay offline by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from setup_tool.errors import ExitCode
from setup_tool.install.compat import MachineFacts, check_machine
from setup_tool.install.lockread import read_locked_platform
from setup_tool.install.wheelcompat import check_wheels

LOCKS = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld-locks"
POPROX = LOCKS / "CCRI-POPROX-poprox-recommender-cpu.conda-lock.yml"
EOTLES = LOCKS / "eotles-ai-research-env-gpu.conda-lock.yml"
ATM = LOCKS / "EricChen521-atm-openmm.conda-lock.yml"
CPU_MACHINE = MachineFacts(driver_cuda=None, glibc="2.36")

pytestmark = pytest.mark.skipif(not LOCKS.is_dir(), reason="../shared/realworld-locks is absent")


@pytest.fixture
def offline(unreachable_channel_url: str) -> dict[str, str]:
    """CLI environment: every HTTP(S) request goes to a refusing 127.0.0.1 port."""
    proxy = unreachable_channel_url.rsplit("/", 1)[0]
    return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": ""}


def dry_run(cli, lockfile: Path, tmp_path: Path, env: dict[str, str], *more: str):  # type: ignore[no-untyped-def]
    return cli(
        "install",
        "--lockfile",
        str(lockfile),
        "--prefix",
        str(tmp_path / "env"),
        "--dry-run",
        "--json",
        *more,
        env=env,
    )


def test_poprox_passes_the_machine_check_and_its_git_entry_is_refused(
    cli, tmp_path: Path, offline: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    locked = read_locked_platform(POPROX, "linux-64")
    assert sorted((w.name, w.is_wheel) for w in locked.wheels) == [
        ("poprox-concepts", False),
        ("progress-api", True),
    ]
    (source,) = check_machine(locked, CPU_MACHINE)  # the conda part and the wheel fit
    assert source.kind == "other" and "poprox-concepts" in source.reason
    wheel = [w for w in locked.wheels if w.is_wheel]  # progress-api fits; the git entry never
    check = check_wheels(wheel, locked.python, "linux-64", CPU_MACHINE)
    assert check.problems == () and check.warnings == ()

    result = dry_run(cli, POPROX, tmp_path, {**offline, "CONDA_OVERRIDE_GLIBC": "2.36"})
    assert result.exit_code == ExitCode.LOCK_MISMATCH, result.output
    error = json.loads(result.stdout)["error"]
    assert (
        "pip package poprox-concepts 0.0.1 is a source, not a wheel "
        "(git+https://github.com/CCRI-POPROX/poprox-concepts.git@f337da0"
    ) in error["message"]
    assert [r["kind"] for r in error["reasons"]] == ["other"]
    assert "Traceback" not in result.stderr and not (tmp_path / "env").exists()


def test_eotles_wheels_fit_and_the_conda_part_decides(
    cli, tmp_path: Path, offline: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    locked = read_locked_platform(EOTLES, "linux-64")
    assert len(locked.wheels) == 16 and all(w.is_wheel for w in locked.wheels)
    assert check_wheels(locked.wheels, locked.python, "linux-64", CPU_MACHINE).problems == ()

    no_driver = dry_run(cli, EOTLES, tmp_path, {**offline, "CONDA_OVERRIDE_CUDA": ""})
    assert no_driver.exit_code == ExitCode.LOCK_MISMATCH, no_driver.output
    assert "no NVIDIA driver" in no_driver.stderr

    gpu = MachineFacts(driver_cuda="12.4", driver_version="550.54.14", glibc="2.36")
    assert check_machine(locked, gpu) == []  # (the dry run itself: see atm-openmm below)


def test_atm_openmm_pip_entries_are_dev_only(cli, tmp_path: Path, offline: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    assert read_locked_platform(ATM, "linux-64").wheels == ()
    locked = read_locked_platform(ATM, "linux-64", ("dev", "main"))
    assert len(locked.wheels) == 22
    assert str(locked.python) == "Python 3.10 (cp310)"
    old_glibc = MachineFacts(driver_cuda=None, glibc="2.17")  # simplejson: manylinux_2_5
    assert check_wheels(locked.wheels, locked.python, "linux-64", old_glibc).problems == ()

    env = {**offline, "CONDA_OVERRIDE_GLIBC": "2.36"}
    planned = dry_run(cli, ATM, tmp_path, env, "--category", "dev")
    assert planned.exit_code == 0, planned.output
    pip = json.loads(planned.stdout)["plan"]["pip"]
    assert len(pip["add"]) == 22 and "simplejson==3.19.2" in pip["add"]
    download = pip["download"]  # sizes unknown: a dry run does not contact the index
    assert (download["packages"], download["bytes"], download["unknown_sizes"]) == (22, None, 22)
    assert "does not contact the channel" in download["size_note"]
