"""``setup-tool report`` and ``setup-tool bench`` (the CLI side; no torch in this process's
work except where the benchmark subprocess runs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from setup_tool.bench_launch import bench_argv, lock_hash_of, validate_options
from setup_tool.errors import UsageError
from setup_tool_bench.report import (
    SEED_REFERENCES,
    comparison,
    load_results,
    plot_seconds_per_epoch,
    run_label,
)

EXAMPLES = Path(__file__).parent.parent / "bench" / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_table_and_plots_from_the_h200_examples(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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


def test_report_without_results_is_one_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.json").write_text("{}")
    result = cli("report", str(tmp_path))
    assert result.exit_code == 2
    assert "no benchmark results" in result.output


def test_bench_argv_passes_the_options_through(tmp_path: Path) -> None:
    values = {
        "device": "cuda:1",
        "loop": "fast",
        "epochs": 2,
        "max_steps": None,
        "batch_size": 32,
        "warmup_steps": 0,
        "capture": "graph",
        "precision": "tf32",
        "loss": "seed",
        "lr": 3e-4,
        "results_dir": tmp_path,
        "label": "box",
        "json": True,
        "lock_hash": "linux-64:abc:packages=def",
    }
    validate_options(values)
    argv = bench_argv(Path("/env/bin/python"), values)
    assert argv[:3] == ["/env/bin/python", "-m", "setup_tool_bench"]
    joined = " ".join(argv)
    for part in (
        "--device cuda:1",
        "--loop fast",
        "--epochs 2",
        "--batch-size 32",
        "--warmup-steps 0",
        "--capture graph",
        "--precision tf32",
        "--loss seed",
        "--lr 0.0003",
        "--label box",
        "--json",
        "--lock-hash linux-64:abc:packages=def",
    ):
        assert part in joined
    assert "--max-steps" not in argv
    # The benchmark's own parser reads back exactly what was given.
    from setup_tool_bench.cli import build_parser

    parsed = vars(build_parser().parse_args(argv[3:]))
    for key, value in values.items():
        assert parsed[key] == (Path(value) if key == "results_dir" else value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be a positive integer, not 0"),
        ({"capture": "turbo"}, "unknown --capture 'turbo'"),
        ({"loop": "turbo"}, "unknown --loop 'turbo'"),
        ({"precision": "fp8"}, "unknown --precision 'fp8'"),
        ({"warmup_steps": -1}, "--warmup-steps must be 0 or more"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(values: dict, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate_options(values)


def test_every_python_m_bench_option_is_a_setup_tool_bench_option(cli) -> None:  # type: ignore[no-untyped-def]
    import typer.main

    from setup_tool.cli.app import app
    from setup_tool_bench.options import OPTIONS

    command = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    offered = {opt: param for param in command.params for opt in param.opts}
    for option in OPTIONS:
        if option.dest == "lock_hash":  # setup-tool reads it from the environment itself
            assert option.flag not in offered
            continue
        param = offered[option.flag]
        assert param.help.startswith(option.help)
        if option.dest != "results_dir":  # setup-tool's default: the project's results/
            assert (f"Default: {option.default_text}." in param.help) == bool(option.default_text)
    assert "tf32" in offered["--precision"].metavar
    assert "Default: 10 (seed, fast), 5 (throughput)." in offered["--warmup-steps"].help
    help_text = cli.ok("bench", "--help").output
    assert "<bool>" not in help_text  # flags take no value
    assert "--json" in help_text and "--loss" in help_text and "--lr" in help_text


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
