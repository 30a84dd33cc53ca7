"""``manager: pip`` entries: wheels installed with the conda packages, in the same atomic step.

The lock is the local channel's cpu lock (python 3.12, a stub interpreter that runs the host's
python3 with the environment's site-packages first) plus real wheels from ``tests/wheels.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from install_helpers import assert_no_leftovers, state
from pip_support import SITE, build_demo, demo_lib, lock_with, run_env_python
from wheels import WheelSpec, build_wheel

from setup_tool.doctor.drift import check_drift
from setup_tool.install.wheelinstall import install_wheels


@pytest.fixture
def pip_lock(cpu_lock: Path, tmp_path: Path) -> Path:
    return lock_with(cpu_lock, tmp_path / "pip.conda-lock.yml", build_demo(tmp_path / "wheels"))


def install(cli, lockfile: Path, prefix: Path, *more: str):  # type: ignore[no-untyped-def]
    return cli.ok("install", "--lockfile", str(lockfile), "--prefix", str(prefix), *more)


def install_json(cli, lockfile: Path, prefix: Path, *more: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(install(cli, lockfile, prefix, "--json", *more).stdout)  # type: ignore[no-any-return]


def test_wheels_are_installed_after_the_conda_packages(cli, pip_lock: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = tmp_path / "env"
    result = install(cli, pip_lock, prefix)
    assert "installed 9 packages and 2 pip packages (2 added" in result.stderr

    # The console script names the final prefix's python (never the staging directory) and runs.
    script = prefix / "bin/demo-tool"
    assert script.read_text().splitlines()[0] == f"#!{prefix}/bin/python"
    ran = subprocess.run([str(script), "x"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "demo-tool 1.0.0 ['x']"
    assert (prefix / "share/demo-tool/README").read_text() == "demo data\n"

    # importlib.metadata, inside the environment, sees both with their RECORD and INSTALLER.
    seen = json.loads(
        run_env_python(
            prefix,
            "import json, importlib.metadata as m; d = m.distribution('demo-tool'); "
            "print(json.dumps({'version': d.version, 'installer': d.read_text('INSTALLER'), "
            "'files': sorted(str(f) for f in d.files), 'lib': m.version('demo_lib'), "
            "'requires': d.requires}))",
        )
    )
    assert seen["version"] == "2.1.0" and seen["lib"] == "1.0.0"
    assert seen["installer"] == "setup-tool\n"
    assert "../../../bin/demo-tool" in seen["files"] and "demo_tool/cli.py" in seen["files"]
    assert seen["requires"] == ["demo-lib>=1", "numpy>=1.23"]
    direct = json.loads((prefix / SITE / "demo_tool-2.1.0.dist-info/direct_url.json").read_text())
    locked = {w["name"]: w for w in state(prefix)["wheels"]}  # type: ignore[union-attr]
    assert direct["url"] == locked["Demo.Tool"]["url"]
    assert direct["archive_info"]["hashes"]["sha256"] == locked["Demo.Tool"]["sha256"]
    assert_no_leftovers(prefix)  # no text file mentions the staging directory

    again = install_json(cli, pip_lock, prefix)
    assert again["status"] == "up-to-date" and again["plan"]["pip"]["keep"] == 2


def test_a_wheel_removed_by_hand_is_drift_that_install_repairs(
    cli, pip_lock: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = tmp_path / "env"
    install(cli, pip_lock, prefix)
    shutil.rmtree(prefix / SITE / "demo_lib")
    shutil.rmtree(prefix / SITE / "demo_lib-1.0.0.dist-info")

    drift = check_drift(prefix, tmp_path)
    assert drift.state == "drifted"
    assert [str(p) for p in drift.missing] == ["demo-lib 1.0.0"]

    plan = install_json(cli, pip_lock, prefix, "--dry-run")["plan"]["pip"]
    assert plan["add"] == ["demo-lib==1.0.0"] and plan["keep"] == 1
    assert install_json(cli, pip_lock, prefix)["status"] == "installed"
    assert run_env_python(prefix, "import demo_lib; print(demo_lib.__version__)") == "1.0.0"
    assert check_drift(prefix, tmp_path).state == "clean"
    assert install_json(cli, pip_lock, prefix)["status"] == "up-to-date"


def test_a_package_pip_installed_by_hand_is_removed(cli, pip_lock: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = tmp_path / "env"
    install(cli, pip_lock, prefix)
    extra = prefix / SITE / "extra_thing-0.1.dist-info"
    extra.mkdir()
    (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-thing\nVersion: 0.1\n")
    (extra / "INSTALLER").write_text("pip\n")

    assert [str(p) for p in check_drift(prefix, tmp_path).extra] == ["extra-thing 0.1"]
    dry = install_json(cli, pip_lock, prefix, "--dry-run")
    assert dry["plan"]["pip"]["remove"] == ["extra-thing 0.1"]
    install(cli, pip_lock, prefix)
    assert not extra.exists()


def test_a_relocked_wheel_is_upgraded_and_the_plan_says_so(
    cli, cpu_lock: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = tmp_path / "env"
    first = build_demo(tmp_path / "wheels")
    install(cli, lock_with(cpu_lock, tmp_path / "one.yml", first), prefix)
    newer = [build_wheel(tmp_path / "wheels", demo_lib("1.1.0")), first[1]]
    relocked = lock_with(cpu_lock, tmp_path / "two.yml", newer)

    dry = install_json(cli, relocked, prefix, "--dry-run")
    pip = dry["plan"]["pip"]
    assert pip["change"] == [{"name": "demo-lib", "from": "1.0.0", "to": "1.1.0"}]
    download = pip["download"]  # file://: the size is known without downloading
    assert (download["packages"], download["bytes"]) == (1, newer[0].size)
    assert dry["plan"]["add"] == [] and dry["plan"]["change"] == []
    result = install_json(cli, relocked, prefix)
    assert result["status"] == "installed"
    assert subprocess.run(
        [str(prefix / "bin/demo-tool")], capture_output=True, text=True, check=True
    ).stdout.startswith("demo-tool 1.1.0")
    assert not (prefix / SITE / "demo_lib-1.0.0.dist-info").exists()


def test_dry_run_lists_the_pip_part(cli, pip_lock: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = install(cli, pip_lock, tmp_path / "env", "--dry-run")
    assert "+ demo-lib==1.0.0 (pip)" in result.stdout
    assert "+ Demo.Tool==2.1.0 (pip)" in result.stdout
    assert "pip: 2 to add, 0 to change, 0 to remove, 0 unchanged; download 2 wheels" in (
        result.stdout
    )
    assert not (tmp_path / "env").exists()


def test_pip_list_and_pip_uninstall_work_after_the_move(tmp_path: Path) -> None:
    """The wheels are installed into a staging directory and moved: RECORD stays right.

    With a real interpreter (a venv of the one running the tests, standing in for the conda
    Python): installed at a staging path for the final one, renamed, then listed and
    uninstalled by pip itself, which deletes every file RECORD names (the script in bin too).
    """
    from setup_tool.install.download import Fetched
    from setup_tool.install.wheels import LockedWheel, PythonTarget

    final, staging = tmp_path / "env", tmp_path / ".env.staging-1"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(final)], check=True)
    final.rename(staging)
    built = build_demo(tmp_path / "wheels")
    fetched = [
        Fetched(LockedWheel(w.name, w.version, w.url, w.sha256, "linux-64"), w.path, cached=True)
        for w in built
    ]
    python = PythonTarget(sys.version_info[:2], f"cp{sys.version_info[0]}{sys.version_info[1]}")
    install_wheels(fetched, staging=staging, final_prefix=final, python=python, platform="linux-64")
    staging.rename(final)

    pip = [sys.executable, "-m", "pip", "--python", str(final / "bin/python")]
    listed = subprocess.run(
        [*pip, "list", "--format=json"], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    found = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert found["Demo.Tool"] == "2.1.0" and found["demo-lib"] == "1.0.0"
    ran = subprocess.run(
        [str(final / "bin/demo-tool")], capture_output=True, text=True, check=False
    )
    assert ran.stdout.startswith("demo-tool 1.0.0"), ran.stderr

    removed = subprocess.run(
        [*pip, "uninstall", "-y", "demo-tool"], capture_output=True, text=True, check=False
    )
    assert removed.returncode == 0, removed.stderr
    site = final / python.site_packages
    assert not (final / "bin/demo-tool").exists()
    assert not (site / "demo_tool").exists() and not (final / "share/demo-tool").exists()
    assert (site / "demo_lib").is_dir()


def _venv_staging(tmp_path: Path) -> tuple[Path, Path]:
    final, staging = tmp_path / "env", tmp_path / ".env.staging-1"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(final)], check=True)
    final.rename(staging)
    return final, staging


def test_wheels_sharing_a_directory_install_side_by_side(tmp_path: Path) -> None:
    """Like NVIDIA's nvidia-*-cu12 wheels, which all write under site-packages/nvidia/: eight
    wheels installed by four threads at once, each complete, none clobbering another."""
    from setup_tool.install.download import Fetched
    from setup_tool.install.wheels import LockedWheel, PythonTarget

    specs = [
        WheelSpec(f"nsp-part{n}", "1.0", files=(
            (f"nsp/part{n}/__init__.py", f"N = {n}\n"),
            *((f"nsp/part{n}/lib/m{k}.py", "") for k in range(30)),
        ))
        for n in range(8)
    ]  # fmt: skip
    built = [build_wheel(tmp_path / "wheels", spec) for spec in specs]
    final, staging = _venv_staging(tmp_path)
    fetched = [
        Fetched(LockedWheel(w.name, w.version, w.url, w.sha256, "linux-64"), w.path, cached=True)
        for w in built
    ]
    python = PythonTarget(sys.version_info[:2], f"cp{sys.version_info[0]}{sys.version_info[1]}")
    install_wheels(
        fetched, staging=staging, final_prefix=final, python=python, platform="linux-64",
        workers=4,
    )  # fmt: skip
    site = staging / python.site_packages
    for n in range(8):
        assert len(list((site / f"nsp/part{n}/lib").iterdir())) == 30
        record = (site / f"nsp_part{n}-1.0.dist-info/RECORD").read_text()
        assert record.count(f"nsp/part{n}/") == 31


def test_two_wheels_writing_one_file_is_an_error(tmp_path: Path) -> None:
    from setup_tool.errors import SetupToolError
    from setup_tool.install.download import Fetched
    from setup_tool.install.wheels import LockedWheel, PythonTarget

    built = [
        build_wheel(tmp_path / "wheels", WheelSpec(name, "1.0", files=(("same/x.py", name),)))
        for name in ("first", "second")
    ]
    final, staging = _venv_staging(tmp_path)
    fetched = [
        Fetched(LockedWheel(w.name, w.version, w.url, w.sha256, "linux-64"), w.path, cached=True)
        for w in built
    ]
    python = PythonTarget(sys.version_info[:2], f"cp{sys.version_info[0]}{sys.version_info[1]}")
    with pytest.raises(
        SetupToolError, match=r"would overwrite lib/python3\.\d+/site-packages/same/x\.py"
    ):
        install_wheels(
            fetched, staging=staging, final_prefix=final, python=python, platform="linux-64"
        )
