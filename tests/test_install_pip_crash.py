"""SIGKILL while wheels install, and right after: the previous environment stays, whole.

The kill is real (``SETUP_TOOL_TEST_CRASH_AT`` makes the installer SIGKILL itself after the
first wheel is in the staging tree, while the other threads are still writing theirs); the
next run recovers by itself and finishes the upgrade.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from install_helpers import assert_no_leftovers, cli_env, run_install
from pip_support import build_demo, demo_lib, lock_with, run_env_python
from wheels import WheelSpec, build_wheel

from setup_tool.install import prefix as prefixes

VERSION = "import demo_lib; print(demo_lib.__version__)"


@pytest.mark.parametrize(
    ("point", "after_kill"), [("mid-wheels", "1.0.0"), ("after-wheels", "1.0.0")]
)
def test_sigkill_while_wheels_install_keeps_the_old_environment(
    cpu_lock: Path, tmp_path: Path, point: str, after_kill: str
) -> None:
    prefix, env = tmp_path / "env", cli_env(tmp_path / "cache")
    first = build_demo(tmp_path / "wheels")
    done = run_install(lock_with(cpu_lock, tmp_path / "one.yml", first), prefix, env)
    assert done.returncode == 0, done.stderr
    # The upgrade: a new demo-lib and a few more wheels, so several install at once.
    more = [WheelSpec(f"extra-{n}", "1.0") for n in range(4)]
    upgrade = [
        build_wheel(tmp_path / "wheels", demo_lib("1.1.0")),
        first[1],
        *(build_wheel(tmp_path / "wheels", spec) for spec in more),
    ]
    relocked = lock_with(cpu_lock, tmp_path / "two.yml", upgrade)

    killed = run_install(relocked, prefix, {**env, "SETUP_TOOL_TEST_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "installing 6 pip packages" in killed.stderr
    assert run_env_python(prefix, VERSION) == after_kill
    assert prefixes.read_state(prefix) is not None
    assert not (prefix / "lib/python3.12/site-packages/extra_0").exists()

    again = run_install(relocked, prefix, env)
    assert again.returncode == 0, again.stderr
    assert "left by an interrupted install" in again.stderr
    assert run_env_python(prefix, VERSION) == "1.1.0"
    assert run_env_python(prefix, "import extra_3; print(extra_3.__version__)") == "1.0"
    assert_no_leftovers(prefix)
