"""The typer application, and the one place where errors become messages and exit codes.

Command modules (``setup_tool.cli.<command>``) register themselves on ``app`` and keep their
heavy imports inside the command body, so ``setup-tool --help`` and ``detect`` stay fast.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from setup_tool import __version__
from setup_tool.errors import ExitCode, SetupToolError
from setup_tool.terminal import Terminal, escape


def _click_usage_errors() -> tuple[type[Exception], ...]:
    """Click's UsageError class(es). Typer 0.26+ vendors click as ``typer._click`` (no public
    name for its exceptions); older typer uses the ``click`` package. Accept either."""
    found: list[type[Exception]] = []
    try:
        from typer._click.exceptions import UsageError as VendoredUsageError

        found.append(VendoredUsageError)
    except ImportError:
        pass
    try:
        from click import UsageError as ClickUsageError

        found.append(ClickUsageError)
    except ImportError:
        pass
    return tuple(found)


_USAGE_ERRORS = _click_usage_errors()


class _Group(TyperGroup):
    """Maps ``SetupToolError`` and usage errors to one ``error:`` line, a hint and an exit code.

    Sub-command parsing happens inside ``Group.invoke``, so bad flags land there; the group's
    own options (``setup-tool --bogus``) are parsed earlier, in ``parse_args``, so that is
    wrapped too. typer's multi-line boxed usage errors become one line that names the fix.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERRORS as exc:
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SetupToolError as exc:
            Terminal().error(escape(exc.message), escape(exc.hint) if exc.hint else None)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            # Every command leaves things as they were when interrupted (install's atomic
            # swap, lock's temp-file write); say so instead of dying silently.
            Terminal().error("interrupted: nothing was changed by the unfinished step")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except _USAGE_ERRORS as exc:
            _usage_error(exc)


def _usage_error(exc: Exception) -> NoReturn:
    usage_ctx = getattr(exc, "ctx", None)
    command = usage_ctx.command_path if usage_ctx else "setup-tool"
    # typer 0.29 words enum errors "Value error, 'x' is not one of ..."; drop the prefix.
    message = exc.format_message().replace("Value error, ", "")  # type: ignore[attr-defined]
    Terminal().error(escape(message), f"see `{command} --help`")
    raise typer.Exit(int(ExitCode.USAGE)) from None


app = typer.Typer(
    cls=_Group,
    name="setup-tool",
    help=(
        "The right PyTorch for this machine: detect the accelerator, lock the environment with "
        "conda-lock, install it atomically, check the GPU really works, and time MNIST on it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"setup-tool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every external command and decision.")
    ] = False,
) -> None:
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")


def fail(exit_code: ExitCode) -> NoReturn:
    """End a command with a documented non-zero exit code after its result was printed."""
    raise typer.Exit(int(exit_code))
