"""What every hh command shares: the typer app, errors as one line, quiet libraries, signals.

The library raises `hh.edge.errors.HHError` subclasses; here, and only here, they become one
`error: ...` line on stderr and the error's exit code. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import typer

from hh.edge.errors import HHError, MissingExtraError
from hh.edge.quiet import native_output_captured, quiet_libraries

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


def make_app(help_text: str) -> typer.Typer:
    # No shell-completion options and no rich tracebacks: these are tools for the field.
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        help=help_text,
        no_args_is_help=True,
    )


def setup_output(verbose: bool) -> None:
    """First thing every command does: unless --verbose, keep library chatter out."""
    if not verbose:
        quiet_libraries()


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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd stop, docker stop, kill) ends a command the way Ctrl-C does: its
    KeyboardInterrupt handling saves what there is and prints the summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
