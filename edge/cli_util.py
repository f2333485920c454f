"""What every hh command shares: user errors end in one clear line and exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

F = TypeVar("F", bound=Callable)

USER_ERROR_EXIT = 2


class UserError(Exception):
    """Something the user can fix: a wrong folder, a bad file, a bad flag. Printed, never traced."""


def fail(message: str) -> None:
    """Print one error line to stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(USER_ERROR_EXIT)


def user_errors(*error_types: type[BaseException]) -> Callable[[F], F]:
    """Decorate a typer command so the given exception types become `error: ...` and exit 2."""
    caught = (UserError, *error_types)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except caught as exc:
                fail(str(exc))

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
