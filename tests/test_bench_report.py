"""``setup-tool report`` and ``setup-tool bench`` (the CLI side; no torch in this process's
work except where the benchmark subprocess runs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from setup_tool.bench_launch import bench_argv, lock_hash_of, validate_options
from setup_tool.errors import UsageError
from setup_tool_bench.report import (
    SEED_REFERENCES,
    comparison,
    epoch_times_figure,
    load_results,
    partial_note,
    plot_seconds_per_epoch,
    run_label,
    run_labels,
    seconds_per_epoch_figure,
)

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
def test_bad_options_are_refused_before_anything_runs(values: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate_options(values)


def test_every_python_m_bench_option_is_a_setup_tool_bench_option(cli: Cli) -> None:
    import typer.main

    from setup_tool.cli import app
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
    assert "<bool>" not in cli.ok("report", "--help").output


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


# Issue 10: report on malformed results, partial epochs, labels, axis text, legend, pipes. --
def _example(name: str = "h200-fast.json") -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def _write(directory: Path, name: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d.pop("summary"), "no summary.epochs_completed"),
        (
            lambda d: d["summary"].update(seconds_per_epoch="1.3"),
            'summary.seconds_per_epoch is "1.3", not a positive number',
        ),
        (lambda d: d["config"].update(batch_size=None), "config.batch_size is null"),
        (lambda d: d["epochs"][0].update(seconds=None), "epochs[0].seconds is null"),
    ],
    ids=["no-summary", "string-seconds", "null-batch", "null-epoch-seconds"],
)
def test_a_malformed_result_is_skipped_with_its_reason(
    cli: Cli, tmp_path: Path, damage: Callable[[dict[str, Any]], object], reason: str
) -> None:
    good = _write(tmp_path / "res", "good.json", _example())
    bad_data = _example()
    damage(bad_data)
    bad = _write(tmp_path / "res", "bad.json", bad_data)
    result = cli("report", str(good), str(bad), "--no-plots")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"skipped {bad}: {reason}" in " ".join(result.output.split())
    only_bad = cli("report", str(bad), "--no-plots")
    assert only_bad.exit_code == 2
    assert "error: no benchmark results" in only_bad.output


def test_piped_report_prints_the_table_at_full_width(cli: Cli, tmp_path: Path) -> None:
    data = _example()
    data["machine"]["label"] = "a-machine-name-much-longer-than-any-eighty-column-table-allows"
    path = _write(tmp_path, "long.json", data)
    result = cli("report", str(path), "--no-plots")  # CliRunner's stdout is not a terminal
    assert result.exit_code == 0
    assert data["machine"]["label"] in result.stdout
    assert "…" not in result.stdout


def _partial_fast_run() -> dict[str, Any]:
    """The H200 fast example, as if run with --max-steps 50."""
    data = _example()
    epoch = data["epochs"][0]
    epoch.update(steps=50, samples=800, seconds=epoch["seconds"] * 800 / 60_000 * 1.5)
    data["config"]["max_steps"] = 50
    data["summary"]["seconds_per_epoch"] = epoch["seconds"]
    data["run_id"] += "-partial"
    data["_path"] = "partial.json"
    return data


def test_partial_epochs_are_scaled_to_a_full_epoch_and_marked() -> None:
    partial = _partial_fast_run()
    (row,) = comparison([partial])
    assert row.partial_epochs
    assert row.measured_seconds_per_epoch == partial["epochs"][0]["seconds"]
    assert row.seconds_per_epoch == pytest.approx(partial["epochs"][0]["seconds"] * 60_000 / 800)
    assert partial_note(partial) == "est. from 50 of 3750 steps"
    full = _example()
    full["_path"] = "full.json"
    assert partial_note(full) is None
    assert comparison([full])[0].seconds_per_epoch == full["summary"]["seconds_per_epoch"]


def test_plots_show_partial_runs_as_estimates(tmp_path: Path) -> None:
    full, partial = _example(), _partial_fast_run()
    full["_path"] = "full.json"
    bars = plot_seconds_per_epoch([full, partial], tmp_path / "bars.png").series
    (estimate,) = [label for label in bars if "est. from 50 of 3750 steps" in label]
    assert bars[estimate] == [pytest.approx(partial["epochs"][0]["seconds"] * 60_000 / 800)]
    fig, series = epoch_times_figure([full, partial])
    assert any("est. from" in label for label in series)
    assert "partial" in fig.axes[0].get_ylabel()


def test_runs_that_look_alike_get_their_start_time_in_the_legend() -> None:
    first, second = _example(), _example()
    second["started_at"] = "2026-11-29T09:15:00+00:00"
    second["run_id"] += "-again"
    labels = run_labels([first, second])
    assert len(set(labels)) == 2
    assert labels[1].endswith("2026-11-29 09:15")
    again = {**first, "run_id": first["run_id"] + "-b"}  # the same minute: the run id decides
    assert run_labels([first, again])[1].endswith(again["run_id"])
    copies = [{**first, "_path": "a/run.json"}, {**first, "_path": "b/run.json"}]
    assert run_labels(copies)[1].endswith("b/run.json")  # one result read from two places
    other = _example("h200-seed.json")
    assert run_labels([first, other]) == [run_label(first), run_label(other)]


def test_the_bar_axis_names_gray_bars_only_when_they_are_drawn(tmp_path: Path) -> None:
    fast = _example()
    fig, bars = seconds_per_epoch_figure([fast])
    assert "gray" not in fig.axes[0].get_xlabel()
    assert {kind for *_, kind in bars} == {"run"}
    seed = _example("h200-seed.json")
    assert seed["seed_comparable"]
    fig, bars = seconds_per_epoch_figure([fast, seed])
    assert "gray: the seed's published figures" in fig.axes[0].get_xlabel()


def test_the_legend_covers_no_data() -> None:
    results, _ = load_results([EXAMPLES])
    fig, _ = epoch_times_figure(results)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())


def test_bench_with_a_file_that_is_not_a_program_says_so(cli: Cli, tmp_path: Path) -> None:
    result = cli("bench", "--python", "/etc/passwd", "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "error: /etc/passwd cannot run as Python: Permission denied" in result.output
    assert "timed out" not in result.output
    script = tmp_path / "not-python"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    result = cli("bench", "--python", str(script), "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert f"error: {script} is not a Python 3 interpreter" in " ".join(result.output.split())


def test_bench_in_an_environment_whose_torch_is_broken(tmp_path: Path) -> None:
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("# what a half-removed install leaves: no torch.device\n")
    exe = shutil.which("setup-tool", path=str(Path(sys.executable).parent))
    assert exe
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stub")}
    proc = subprocess.run(
        [exe, "bench", "--python", sys.executable, "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "is broken: module 'torch' has no attribute 'device'" in errors[0]
    assert "hint: the environment's torch is broken: reinstall it" in proc.stderr
