"""Option types shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from setup_tool.variants import VariantChoice

VariantOption = Annotated[
    VariantChoice | None,
    typer.Option(
        "--variant",
        case_sensitive=False,
        show_default=False,
        help="PyTorch variant; default: $SETUP_TOOL_VARIANT, else detected (auto).",
    ),
]

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout (schema in README.md)."),
]

PythonOption = Annotated[
    Path | None,
    typer.Option(
        "--python",
        help="Python interpreter to run in (default: the environment `setup-tool env` made).",
        show_default=False,
    ),
]

PrefixOption = Annotated[
    Path | None,
    typer.Option(
        "--prefix",
        help="conda environment prefix to use (default: .envs/<variant> in the project).",
        show_default=False,
    ),
]


class FlagsWithoutMetavar(TyperCommand):
    """A command whose --help shows on/off flags bare (``--json``), not as ``--json <bool>``:
    a flag takes no value, so a value placeholder misleads."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params
