"""scripts/bench-install.py on a small channel of the same shape, so the benchmark keeps working.

The real run builds ~3 GB; this one builds the dependency closure of numpy and sympy from the
same real lock at 1/500 of the sizes, and runs every measurement once over file:// and
http://127.0.0.1.
It checks that each scenario did what it is named (the script stops otherwise) and that the
table has every figure; the figures themselves are the benchmark's business, not a test's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench-install.py"


@pytest.fixture(scope="module")
def bench_install() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_install", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_install"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_small_channel_runs_every_measurement(bench_install: ModuleType, tmp_path: Path) -> None:
    if not bench_install.DEFAULT_LOCK.is_file():
        pytest.skip(
            f"the real lock the channel is modelled on is not here: {bench_install.DEFAULT_LOCK}"
        )
    packages = bench_install.read_model(bench_install.DEFAULT_LOCK, ["numpy", "sympy"], 0.002)
    assert 20 <= len(packages) <= 60 and any(p.noarch == "python" for p in packages)
    channel = bench_install.build_channel(tmp_path / "channel", packages, lambda _: None)
    assert sorted(channel.upgraded) == sorted(
        p.name for p in bench_install.upgrades(packages).values()
    )
    bench = bench_install.Bench(tmp_path, channel, bench_install._environment(packages))
    with bench_install.serve(channel.root) as http_url:
        for transport, url in (("file", channel.url), ("http", http_url)):
            bench_install.one_round(bench, transport, url, lambda _: None)
    table = bench_install.table(bench)
    for what in ("raw cold", "raw warm", "setup-tool cold", "setup-tool warm",
                 "warm, --verify-cache", "no-op", "upgrade (3 large)", "dry-run"):  # fmt: skip
        assert set(bench.results[what]) == {"file", "http"}, what
        assert f"| {what} |" in table
    assert all(s.peak_rss_mb > 0 for per in bench.results.values() for v in per.values() for s in v)
    assert not (tmp_path / "run").exists()  # caches and prefixes deleted after the round
