"""A lock that ``setup-tool lock`` wrote with a ``- pip:`` section installs: its pip entries
name conda-provided packages (numpy) by their PyPI names, and those stay conda's."""

from __future__ import annotations

import json
from pathlib import Path

from channel import LocalChannel
from lock_pip_helpers import channel_with_pip, parse
from pip_support import SITE, run_env_python
from wheel_index import build_index
from wheels import WheelSpec, build_wheel

from setup_tool.lock import lock_variant
from setup_tool.variants import Variant

WHEELS = [
    WheelSpec("alpha", "1.0", requires=("beta>=2", "numpy>=1.20", "torch>=2")),
    WheelSpec("beta", "2.1", console_scripts=(("beta-hello", "beta:hello"),),
              files=(("beta/__init__.py", "def hello():\n    print('beta says hello')\n"),)),
    # The index's own numpy and torch: never locked, since conda provides them.
    WheelSpec("numpy", "2.3.5", "cp312", "cp312", "manylinux_2_28_x86_64"),
    WheelSpec("torch", "2.13.0", "cp312", "cp312", "manylinux_2_28_x86_64"),
]  # fmt: skip


def test_a_lock_with_a_pip_section_installs(
    cli, project: Path, local_channel: LocalChannel, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    built = [build_wheel(tmp_path / "wheels", spec).path for spec in WHEELS]
    index = build_index(tmp_path / "index" / "simple", built)
    channel = channel_with_pip(local_channel, tmp_path / "pip-channel")
    spec = project / "envs" / "base.yml"
    spec.write_text(spec.read_text() + "  - pip:\n      - alpha\n")
    result = lock_variant(
        project, Variant.cpu, channels=[channel], pip_indexes=[index.url], environ={}
    )

    (alpha,) = [p for p in parse(result.path).package if p.name == "alpha" and
                p.platform == "linux-64"]  # fmt: skip
    assert {"numpy", "torch"} <= alpha.dependencies.keys()  # PyPI names of conda packages
    prefix = tmp_path / "env"
    done = cli.ok("install", "--lockfile", str(result.path), "--prefix", str(prefix), "--json")
    plan = json.loads(done.stdout)["plan"]
    assert sorted(plan["pip"]["add"]) == ["alpha==1.0", "beta==2.1"]  # numpy, torch: conda's
    assert any(p.startswith("numpy=2.3.5=") for p in plan["add"])
    assert (
        run_env_python(
            prefix, "import alpha, beta, numpy, torch; print(numpy.__version__, torch.__version__)"
        )
        == "2.3.5 2.13.0"
    )
    assert (prefix / "bin/beta-hello").read_text().startswith(f"#!{prefix}/bin/python\n")
    installer = (prefix / SITE / "beta-2.1.dist-info/INSTALLER").read_text()
    assert installer == "setup-tool\n"
    assert not (prefix / SITE / "numpy-2.3.5.dist-info").exists()  # conda's numpy stays
    again = json.loads(cli.ok("install", "--lockfile", str(result.path), "--prefix",
                              str(prefix), "--json").stdout)  # fmt: skip
    assert again["status"] == "up-to-date"
