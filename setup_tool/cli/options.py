"""Option types shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from enum import Enum
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
    typer.Option(
        "--json",
        help="Print one JSON document on stdout, refusals included (schema_version 1, "
        "documented in docs/<command>.md).",
    ),
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


class TorchFrom(str, Enum):
    """What ``--torch-from`` accepts: ``setup_tool.lock.torch_source.TORCH_SOURCES``."""

    conda_forge = "conda-forge"
    wheels = "wheels"


TorchFromOption = Annotated[
    TorchFrom | None,
    typer.Option(
        "--torch-from",
        show_default=False,
        help="Where PyTorch comes from when locking: conda-forge's builds, or PyTorch's wheels "
        "(pip entries from download.pytorch.org/whl/<cpu|cu126|cu130>, PyPI for mps) inside the "
        "conda environment. Default: what the lock records, else conda-forge.",
    ),
]

ChannelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--channel",
        metavar="URL",
        show_default=False,
        help="Channel to lock from instead of the spec's (conda-forge): a name, a directory, or a "
        "file:// or http(s):// URL; repeatable. Default: $SETUP_TOOL_CHANNEL, else the channels "
        "the lock records if they were an override.",
    ),
]

PipIndexUrlOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pip-index-url",
        metavar="URL",
        show_default=False,
        help="Wheel index (PEP 503) for the `- pip:` section instead of the spec's "
        "pip-repositories and PyPI: a mirror, a file:// URL or a directory; repeatable, highest "
        "priority first. Default: $SETUP_TOOL_PIP_INDEX_URL, else what the lock records.",
    ),
]


def bare_flags(params: list[Any]) -> list[Any]:
    """``params`` with on/off flags shown bare in --help (``--json``), not as ``--json <bool>``:
    a flag takes no value, so a value placeholder misleads. The app's group applies it to every
    command (``setup_tool.cli.app``)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class FlagsWithoutMetavar(TyperCommand):
    """A command whose --help shows its flags bare (``bare_flags``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return bare_flags(super().get_params(ctx))
