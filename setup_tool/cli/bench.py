"""``setup-tool bench``: the bundled MNIST benchmark, run inside the target environment.

The CLI never imports torch: it runs ``python -m bench`` with the target interpreter as a child
attached to the terminal (live progress), with only the ``bench`` package put on its path (a
link to it in a temporary directory, so none of setup-tool's own dependencies leak into the
environment under test). The child prints its own errors; its exit code passes through
(2 bad input, 130 interrupted, 1 otherwise).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import PrefixOption, PythonOption
from setup_tool.errors import CommandFailed, ExitCode, UsageError
from setup_tool.interpreter import resolve_interpreter
from setup_tool.paths import RESULTS_DIR, project_root
from setup_tool.runner import run_passthrough
from setup_tool.terminal import Terminal, escape
from setup_tool.variants import Variant


class LoopChoice(str, Enum):
    seed = "seed"
    fast = "fast"
    throughput = "throughput"
    all = "all"


class CaptureChoice(str, Enum):
    auto = "auto"
    none = "none"
    compile = "compile"
    graph = "graph"
    compile_graph = "compile-graph"
    reduce_overhead = "reduce-overhead"


class PrecisionChoice(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


def bench_argv(
    python: Path,
    *,
    device: str,
    loop: str,
    epochs: int,
    max_steps: int | None,
    batch_size: int | None,
    seed: int,
    warmup_steps: int | None,
    capture: str,
    precision: str,
    data_dir: Path | None,
    results_dir: Path,
    label: str | None,
    json_output: bool,
    test_limit: int | None = None,
    lock_hash: str | None = None,
) -> list[str]:
    """The ``python -m bench`` command line for these options (validated here first)."""
    for flag, value in (
        ("--epochs", epochs),
        ("--max-steps", max_steps),
        ("--batch-size", batch_size),
        ("--test-limit", test_limit),
    ):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, not {value}")
    if warmup_steps is not None and warmup_steps < 0:
        raise UsageError(f"--warmup-steps must be 0 or more, not {warmup_steps}")
    argv = [str(python), "-m", "bench", "--device", device, "--loop", loop]
    argv += ["--epochs", str(epochs), "--seed", str(seed)]
    argv += ["--capture", capture, "--precision", precision, "--results-dir", str(results_dir)]
    optional: dict[str, object] = {
        "--max-steps": max_steps,
        "--batch-size": batch_size,
        "--warmup-steps": warmup_steps,
        "--data-dir": data_dir,
        "--label": label,
        "--test-limit": test_limit,
        "--lock-hash": lock_hash,
    }
    for flag, given in optional.items():
        if given is not None:
            argv += [flag, str(given)]
    if json_output:
        argv.append("--json")
    return argv


def lock_hash_of(prefix: Path | None) -> str | None:
    """The lock behind an environment setup-tool installed: conda-lock's content hash of the
    platform it was installed for, plus the digest of exactly the packages installed."""
    from setup_tool.install.prefix import read_state

    state = read_state(prefix) if prefix is not None else None
    if not state:
        return None
    return (
        f"{state.get('platform')}:{state.get('content_hash')}:packages={state.get('packages_hash')}"
    )


def bench_package_dir() -> Path:
    """Where the ``bench`` package of this setup-tool lives (found without importing it)."""
    spec = importlib.util.find_spec("bench")
    if spec is None or spec.origin is None:
        raise UsageError("the bench package is missing from this setup-tool installation")
    return Path(spec.origin).parent


@app.command()
def bench(
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N, mps, or all (each device in turn).")
    ] = "auto",
    loop: Annotated[
        LoopChoice,
        typer.Option(help="seed: the faithful 2022 loop; fast; throughput; all: each in turn."),
    ] = LoopChoice.seed,
    epochs: Annotated[int, typer.Option(help="Epochs to time (20 reproduces the seed).")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop each epoch after N steps.", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Default: 16 (seed, fast), 4096 (throughput).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    warmup_steps: Annotated[
        int | None, typer.Option(help="Untimed steps before the first epoch.", show_default=False)
    ] = None,
    capture: Annotated[
        CaptureChoice, typer.Option(help="Capture mode of the fast and throughput loops.")
    ] = CaptureChoice.auto,
    precision: Annotated[
        PrecisionChoice, typer.Option(help="fast/throughput: fp32 or bf16 autocast.")
    ] = PrecisionChoice.auto,
    data_dir: Annotated[
        Path | None, typer.Option(help="Another copy of the MNIST files.", show_default=False)
    ] = None,
    results_dir: Annotated[
        Path | None, typer.Option(help="Where results go (default: results/ in the project).")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="This machine's name in reports.", show_default=False)
    ] = None,
    test_limit: Annotated[
        int | None,
        typer.Option(help="Evaluate on the first N test images only.", show_default=False),
    ] = None,
    python: PythonOption = None,
    prefix: PrefixOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the runs' summaries as JSON on stdout.")
    ] = False,
) -> None:
    """Time the seed's MNIST CNN training on this machine's devices (python -m bench).

    Runs inside the target environment: --python, --prefix, the environment `setup-tool env`
    made for this machine's variant, else this interpreter when it has torch. Writes one JSON
    result (and the seed's .txt of epoch times) per device and loop into results/;
    `setup-tool report` compares them.
    """
    terminal = Terminal(quiet=json_output)
    root = project_root()
    target = resolve_interpreter(
        python=python, prefix=prefix, root=root, variant=_detected_variant(python, prefix)
    )
    interpreter, source = target.python, target.source
    argv = bench_argv(
        interpreter,
        device=device,
        loop=loop.value,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        seed=seed,
        warmup_steps=warmup_steps,
        capture=capture.value,
        precision=precision.value,
        data_dir=data_dir.resolve() if data_dir else None,
        results_dir=(results_dir or root / RESULTS_DIR).resolve(),
        label=label,
        json_output=json_output,
        test_limit=test_limit,
        lock_hash=lock_hash_of(target.prefix),
    )
    terminal.step(f"benchmark in {escape(str(interpreter))} (from {escape(source)})")
    with tempfile.TemporaryDirectory(prefix="setup-tool-bench-") as tmp:
        link = Path(tmp) / "bench"
        try:
            link.symlink_to(bench_package_dir(), target_is_directory=True)
        except OSError:  # no symlinks (some Windows setups): copy the package instead
            shutil.copytree(bench_package_dir(), link)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tmp, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen
        code = run_passthrough(argv, env=env)
    if code is None:
        raise CommandFailed(argv, None, f"{interpreter} could not be started")
    if code == 0:
        return
    if code == ExitCode.USAGE:
        fail(ExitCode.USAGE)
    if code in (ExitCode.INTERRUPTED, -2):  # -2: killed by SIGINT before it could exit
        fail(ExitCode.INTERRUPTED)
    fail(ExitCode.ERROR)


def _detected_variant(python: Path | None, prefix: Path | None) -> Variant | None:
    """The variant whose environment is the default target (only needed without flags)."""
    if python is not None or prefix is not None:
        return None
    from setup_tool.detect import detect, overrides_from

    return detect(overrides_from(None, os.environ), os.environ).target.variant
