"""Options declared once: a dataclass field carries its default, its type and its help. stdlib only.

hh's jobs take one typed options object (TrainConfig, CameraOptions), built alike by a command
and by Python. Each field that is also a command-line flag is declared with `option(...)`, and
the command's flags are made from these fields (hh.edge.cli_util.options_command), so a
default, a type or a help text is never written twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

HELP = "help"
FLAGS = "flags"


def option(default: Any = None, help: str = "", flags: tuple[str, ...] | None = None, **field_args: Any) -> Any:
    """A dataclass field that is also a command-line option: `help` is its --help text, `flags`
    its spelling where it is not `--name-with-dashes` (for example ("--lr",), or
    ("--selftest/--no-selftest",) for a boolean pair)."""
    metadata = {HELP: help, FLAGS: flags}
    if "default_factory" in field_args:
        return dataclasses.field(metadata=metadata, **field_args)
    return dataclasses.field(default=default, metadata=metadata, **field_args)


def option_fields(cls) -> list[dataclasses.Field]:
    """The fields of an options dataclass that are command-line options, in declaration order."""
    return [f for f in dataclasses.fields(cls) if HELP in f.metadata]
