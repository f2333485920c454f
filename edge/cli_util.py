"""What every hh command shares: the typer app, flags made from options, errors as one line, quiet libraries.

The library raises `hh.edge.errors.HHError` subclasses; here, and only here, they become one
`error: ...` line on stderr and the error's exit code. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from .errors import HHError, MissingExtraError
from .log import show_on_stderr
from .options import FLAGS, HELP, option_fields
from .quiet import native_output_captured, quiet_libraries

F = TypeVar("F", bound=Callable)

VerboseOption = Annotated[
    bool, typer.Option("--verbose", help="Also show what TensorFlow, LiteRT and OpenCV print (hidden by default).")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")]


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def flag_for(param: str) -> str:
    return "--" + param.replace("_", "-")


def reports_errors(flags: dict[str, str] | None = None) -> Callable[[F], F]:
    """Decorate a typer command: an HHError becomes `error: ...` on stderr and its exit code.

    flags: library parameter name -> how the command's user writes it, where it is not
    simply `--name-with-dashes` (for example {"model_path": "MODEL"}).
    """
    names = flags or {}

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except HHError as exc:
                print_error(exc.with_names(lambda param: names.get(param, flag_for(param))))
                raise typer.Exit(exc.exit_code) from None

        return wrapper  # type: ignore[return-value]

    return decorate


# Click's error for a usage mistake (an unknown flag, a missing or extra argument, a bad value),
# reached through typer's public BadParameter, one of its kinds.
_CLICK_ERROR: type[Exception] = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException")


def run_app(app: typer.Typer) -> None:
    """A command's entry point: typer's, except that a usage mistake is one `error:` line and
    exit 2 (not a box), and never repeats a stream URL's secrets from the command line."""
    from .redact import describe_source

    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":  # the command alone: its help
            print(message)
        else:
            for argument in sys.argv[1:]:
                if "://" in argument or "@" in argument:
                    message = message.replace(argument, describe_source(argument))
            print_error(" ".join(message.split()))
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def make_app(help_text: str) -> typer.Typer:
    # No shell-completion options and no rich tracebacks: these are tools for the field.
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        help=help_text,
        no_args_is_help=True,
    )


def setup_output(verbose: bool) -> None:
    """First thing every command does: hh's own lines on stderr, and unless --verbose, library
    chatter kept out."""
    show_on_stderr(verbose)
    if not verbose:
        quiet_libraries()


def options_command(options_cls: type, flags: dict[str, str] | None = None, unset_defaults: bool = False) -> Callable[[F], F]:
    """Give a command taking `**options` one flag per option field of `options_cls` (declared
    with hh.edge.options.option: type, default and help written once, in the library).

    unset_defaults: flags default to None ("not given"), each help saying the real default, so
    the command can tell what was given (hh-train --resume refuses changed settings).
    flags: how the command spells a field's flag where the field does not say.
    """
    spellings = flags or {}

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        explicit = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD
        ]
        hints = typing.get_type_hints(options_cls)
        generated = []
        for spec in option_fields(options_cls):
            default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[operator]
            kind, help_text = hints[spec.name], spec.metadata[HELP]
            decls = spec.metadata[FLAGS] or ((spellings[spec.name],) if spec.name in spellings else ())
            value = default
            if unset_defaults and kind is not bool:
                kind, value = kind | None, None
                if default is not None:
                    help_text += f" (default {default})"
            annotation = Annotated[kind, typer.Option(*decls, help=help_text)]  # type: ignore[valid-type]
            generated.append(inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=annotation))
        arguments = [p for p in explicit if isinstance(_typer_info(p), typer.models.ArgumentInfo)]
        rest = [p for p in explicit if p not in arguments]
        command.__signature__ = signature.replace(parameters=[*arguments, *generated, *rest])  # type: ignore[attr-defined]
        return command

    return decorate


def _typer_info(parameter: inspect.Parameter):
    for extra in getattr(parameter.annotation, "__metadata__", ()):
        if isinstance(extra, typer.models.ParameterInfo):
            return extra
    return None


TRAIN_MODULES = ("tensorflow", "keras", "matplotlib", "PIL", "flatbuffers")


def require_train_extra(command: str) -> None:
    """Import TensorFlow (quietly) or say in one line that `command` needs hh[train]."""
    missing = None
    with native_output_captured():
        for name in TRAIN_MODULES:
            try:
                __import__(name)
            except ImportError:
                missing = name
                break
    if missing:
        raise MissingExtraError(
            f"{command} needs TensorFlow and the other training packages ({missing} is not installed): "
            "pip install 'hh[train]' (this looks like a device install, hh[edge])"
        )
