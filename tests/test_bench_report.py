"""``setup-tool report`` and ``setup-tool bench`` (the CLI side; no torch in this process's
work except where the benchmark subprocess runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli

from bench.report import (
    SEED_REFERENCES,
    comparison,
    load_results,
    plot_seconds_per_epoch,
    run_label,
)
from setup_tool.cli.bench import bench_argv, lock_hash_of
from setup_tool.errors import UsageError

EXAMPLES = Path(__file__).parent.parent / "bench" / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_table_and_plots_from_the_h200_examples(cli: Cli, tmp_path: Path) -> None:
    result = cli.ok("report", str(EXAMPLES), "--out", str(tmp_path), "--json")
    doc = json.loads(result.stdout)
    rows = {(r["machine"], r["loop"], r["batch_size"]): r for r in doc["runs"]}
    assert set(rows) == {
        ("h200", "seed", 16),
        ("h200", "fast", 16),
        ("h200", "throughput", 1024),
        ("h200", "throughput", 4096),
        ("dev-2core", "seed", 16),
        ("dev-2core", "fast", 16),
    }
    assert rows[("dev-2core", "seed", 16)]["speedup"] == pytest.approx(1.0)  # the slowest
    fast, seed = rows[("h200", "fast", 16)], rows[("h200", "seed", 16)]
    assert fast["samples_per_second"] / seed["samples_per_second"] > 10
    assert [r["samples_per_second"] for r in doc["runs"]] == sorted(
        (r["samples_per_second"] for r in doc["runs"]), reverse=True
    )
    for name in ("epoch_times.png", "seconds_per_epoch.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_bars_match_the_results_and_add_the_seeds_figures(tmp_path: Path) -> None:
    results, skipped = load_results([EXAMPLES])
    assert not skipped
    plotted = plot_seconds_per_epoch(results, tmp_path / "bars.png")
    for r in results:
        assert plotted.series[run_label(r)] == [r["summary"]["seconds_per_epoch"]]
    # The seed example has the seed's configuration, so the published figures are there.
    for name, seconds in SEED_REFERENCES:
        assert plotted.series[name] == [seconds]
    assert next(row.loop for row in comparison(results)) == "throughput"


def test_report_without_results_is_one_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text("{}")
    result = cli("report", str(tmp_path))
    assert result.exit_code == 2
    assert "no benchmark results" in result.output


def test_bench_argv_and_its_validation(tmp_path: Path) -> None:
    argv = bench_argv(
        Path("/env/bin/python"),
        device="cuda:1",
        loop="fast",
        epochs=2,
        max_steps=None,
        batch_size=32,
        seed=3,
        warmup_steps=0,
        capture="graph",
        precision="auto",
        data_dir=None,
        results_dir=tmp_path,
        label="box",
        json_output=True,
        lock_hash="linux-64:abc:packages=def",
    )
    assert argv[:3] == ["/env/bin/python", "-m", "bench"]
    joined = " ".join(argv)
    for part in (
        "--device cuda:1",
        "--loop fast",
        "--epochs 2",
        "--batch-size 32",
        "--warmup-steps 0",
        "--capture graph",
        "--label box",
        "--json",
        "--lock-hash linux-64:abc:packages=def",
    ):
        assert part in joined
    assert "--max-steps" not in argv
    with pytest.raises(UsageError, match="--batch-size must be a positive integer, not 0"):
        bench_argv(
            Path("p"),
            device="cpu",
            loop="seed",
            epochs=1,
            max_steps=None,
            batch_size=0,
            seed=0,
            warmup_steps=None,
            capture="auto",
            precision="auto",
            data_dir=None,
            results_dir=tmp_path,
            label=None,
            json_output=False,
        )


def test_lock_hash_comes_from_the_installed_environment(tmp_path: Path) -> None:
    from setup_tool.install.prefix import write_state

    assert lock_hash_of(None) is None
    assert lock_hash_of(tmp_path / "not-an-env") is None
    write_state(
        tmp_path, {"platform": "linux-64", "content_hash": "c0ffee", "packages_hash": "f00"}
    )
    assert lock_hash_of(tmp_path) == "linux-64:c0ffee:packages=f00"


def test_setup_tool_bench_runs_the_benchmark_in_a_subprocess(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    exe = shutil.which("setup-tool", path=str(Path(sys.executable).parent))
    assert exe, "setup-tool is not installed in this environment"
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            exe,
            "bench",
            "--device",
            "cpu",
            "--loop",
            "fast",
            "--max-steps",
            "3",
            "--warmup-steps",
            "1",
            "--test-limit",
            "50",
            "--results-dir",
            str(tmp_path / "res"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)
    assert run["complete"] is True and Path(run["path"]).is_file()
    assert "fast loop on cpu" in proc.stderr

    bad = subprocess.run(
        [exe, "bench", "--device", "tpu", "--results-dir", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2
    assert "error: unknown device 'tpu'" in bad.stderr and "Traceback" not in bad.stderr
