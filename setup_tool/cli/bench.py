"""``setup-tool bench``: the bundled MNIST benchmark, run inside the target environment.

Its options are generated from the benchmark's own table (``setup_tool_bench.options``), the
one definition ``python -m bench`` is built from too, so the two accept the same flags with the
same help and defaults; setup-tool adds ``--python`` and ``--prefix`` and records the
environment's lock hash itself. ``setup_tool.bench_launch`` checks the options and runs the
child; this module renders and maps the child's exit code (2 bad input, 130 interrupted, 1
otherwise).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from setup_tool.bench_launch import lock_hash_of, run_benchmark
from setup_tool.cli.app import app, fail
from setup_tool.cli.options import FlagsWithoutMetavar, PrefixOption, PythonOption
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.errors import ExitCode
from setup_tool.interpreter import resolve_interpreter
from setup_tool.paths import RESULTS_DIR, project_root
from setup_tool.variants import Variant
from setup_tool_bench.options import KINDS, OPTIONS, Option

# Options whose setup-tool default differs from ``python -m bench``'s: (default, as help says it).
SETUP_TOOL_DEFAULTS: dict[str, tuple[object, str]] = {
    "results_dir": (None, "results/ in the project"),
}
NOT_OFFERED = {"lock_hash"}
PANELS = {
    "distributed": "Data-parallel run (torch.distributed, torchrun)"
}  # setup-tool reads the environment's lock hash itself

HELP = """Time the seed's MNIST CNN training on this machine's devices (python -m bench).

Runs inside the target environment: --python, --prefix, the environment `setup-tool env`
made for this machine's variant, else this interpreter when it has torch. Writes one JSON
result (and the seed's .txt of epoch times) per device and loop into results/;
`setup-tool report` compares them.
"""


def option_parameter(option: Option) -> inspect.Parameter:
    """A typer parameter for one benchmark option, with its help and its default."""
    default, shown = SETUP_TOOL_DEFAULTS.get(option.dest, (option.default, option.default_text))
    help_text = f"{option.help} Default: {shown}." if shown else option.help
    annotation: Any
    if option.kind == "flag":
        default = False
        annotation = Annotated[
            bool,
            typer.Option(option.flag, help=help_text, rich_help_panel=PANELS.get(option.group)),
        ]
    else:
        value_type: Any = KINDS[option.kind]
        annotation = Annotated[
            value_type if default is not None else Optional[value_type],  # noqa: UP045 (a runtime type)
            typer.Option(
                option.flag,
                help=help_text,
                metavar=option.metavar,
                show_default=False,
                rich_help_panel=PANELS.get(option.group),
            ),
        ]
    return inspect.Parameter(
        option.dest, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def bench(**values: Any) -> None:
    python: Path | None = values.pop("python")
    prefix: Path | None = values.pop("prefix")
    terminal = Terminal(quiet=bool(values["json"]))
    root = project_root()
    target = resolve_interpreter(
        python=python, prefix=prefix, root=root, variant=_detected_variant(python, prefix)
    )
    values["results_dir"] = (values["results_dir"] or root / RESULTS_DIR).resolve()
    if values["data_dir"] is not None:
        values["data_dir"] = values["data_dir"].resolve()
    values["lock_hash"] = lock_hash_of(target.prefix)
    outcome = run_benchmark(
        target.python, target.source, values, events=_Events(terminal), environ=os.environ
    )
    if outcome.exit_code != ExitCode.OK:
        fail(outcome.exit_code)


class _Events:
    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def starting(self, python: Path, source: str) -> None:
        self.terminal.step(f"benchmark in {escape(str(python))} (from {escape(source)})")


def _detected_variant(python: Path | None, prefix: Path | None) -> Variant | None:
    """The variant whose environment is the default target (only needed without flags)."""
    if python is not None or prefix is not None:
        return None
    from setup_tool.detect import detect, overrides_from

    return detect(overrides_from(None, os.environ), os.environ).target.variant


def _signature() -> inspect.Signature:
    offered = [option_parameter(o) for o in OPTIONS if o.dest not in NOT_OFFERED]
    own = [
        inspect.Parameter(
            "python", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PythonOption
        ),
        inspect.Parameter(
            "prefix", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PrefixOption
        ),
    ]
    return inspect.Signature([*offered, *own])


# typer reads a command's parameters from its signature: this one is built from the table.
bench.__dict__["__signature__"] = _signature()
app.command(name="bench", help=HELP, cls=FlagsWithoutMetavar)(bench)
