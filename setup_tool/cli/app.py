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
from setup_tool.cli.options import bare_flags
from setup_tool.cli.terminal import Terminal, escape
from setup_tool.errors import ExitCode, SetupToolError


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
    wrapped too. typer's multi-line boxed usage errors become one line that names the fix. A
    command run with ``--json`` also gets its refusal as the one JSON document on stdout
    (``error_document``), so a script always has exactly one document to read, whatever happened.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return bare_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:  # every command's --help shows its flags bare
            bare_flags(command.get_params(ctx))
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERRORS as exc:
            self._usage_failure(False, exc)

    def invoke(self, ctx: Any) -> Any:
        json_output = self._wants_json(ctx)
        command_path = self._command_path(ctx)  # read now: invoking consumes the arguments
        Terminal.json_written = False
        try:
            return super().invoke(ctx)
        except SetupToolError as exc:
            self._fail(json_output, exc.to_json(), exc.message, exc.hint)
        except KeyboardInterrupt:
            # Every command leaves things as they were when interrupted (install's atomic
            # swap, lock's temp-file write); say so instead of dying silently.
            message = "interrupted: nothing was changed by the unfinished step"
            error = _error("Interrupted", message, None, ExitCode.INTERRUPTED)
            self._fail(json_output, error, message, None)
        except _USAGE_ERRORS as exc:
            self._usage_failure(json_output, exc, command_path)

    def _usage_failure(
        self, json_output: bool, exc: Exception, command_path: str = "setup-tool"
    ) -> NoReturn:
        # Some parser errors ("Option '--x' requires an argument.") carry no context.
        usage_ctx = getattr(exc, "ctx", None)
        command = usage_ctx.command_path if usage_ctx else command_path
        # typer 0.29 words enum errors "Value error, 'x' is not one of ..."; drop the prefix.
        message = exc.format_message().replace("Value error, ", "")  # type: ignore[attr-defined]
        hint = f"see `{command} --help`"
        self._fail(json_output, _error("UsageError", message, hint, ExitCode.USAGE), message, hint)

    @staticmethod
    def _fail(json_output: bool, error: dict[str, Any], message: str, hint: str | None) -> NoReturn:
        terminal = Terminal()
        terminal.error(escape(message), escape(hint) if hint else None)
        if json_output and not Terminal.json_written:
            terminal.json(error_document(error))
        raise typer.Exit(int(error["exit_code"])) from None

    @staticmethod
    def _command_args(ctx: Any) -> list[str]:
        """The sub-command's name and arguments, before the sub-command has parsed them."""
        return [*getattr(ctx, "_protected_args", ()), *ctx.args]

    def _command_path(self, ctx: Any) -> str:
        """``setup-tool <command>`` for the command on the line (``setup-tool`` without one)."""
        args = self._command_args(ctx)
        if args and self.get_command(ctx, args[0]) is not None:
            return f"{ctx.command_path} {args[0]}"
        return str(ctx.command_path)

    def _wants_json(self, ctx: Any) -> bool:
        """Whether the command line asks a command that has ``--json`` for it (read before
        parsing, so that a refusal while parsing is JSON too)."""
        args = self._command_args(ctx)
        if not args:
            return False
        command = self.get_command(ctx, args[0])
        rest = args[1 : args.index("--")] if "--" in args else args[1:]
        return (
            command is not None
            and "--json" in rest
            and any("--json" in getattr(param, "opts", ()) for param in command.params)
        )


def _error(kind: str, message: str, hint: str | None, code: ExitCode) -> dict[str, Any]:
    return {"type": kind, "message": message, "hint": hint, "exit_code": int(code)}


def error_document(error: dict[str, Any]) -> dict[str, Any]:
    """The one JSON document of a refused ``--json`` command (schema version 1, documented in
    docs/install.md "JSON output"): ``status`` is "error" and ``error`` says why."""
    return {"schema_version": 1, "status": "error", "error": error}


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
