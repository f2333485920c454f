"""hh's own voice: the "hh" logger, and the one handler that shows it. stdlib only.

Library code says what it does through `logging.getLogger("hh.<part>")` (progress at INFO,
what a user should know at WARNING) and never prints. The commands install `show_on_stderr`,
which prints each message as one plain line ("warning: ..." for warnings), so a run reads the
same from a shell as it always has; a Python caller decides where hh's lines go like any
library's, or asks for the commands' lines with the same function.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

ROOT = "hh"


class _StderrLines(logging.Handler):
    """Messages as plain lines on whatever sys.stderr is when they are emitted (a test runner
    or a notebook may swap it between calls)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.levelno >= logging.WARNING and not message.startswith(("warning:", "error:")):
                message = f"warning: {message}"
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own rule: a handler never raises
            self.handleError(record)


def show_on_stderr(verbose: bool = False) -> logging.Handler:
    """Show hh's messages on stderr, one line each (the commands call this first). Idempotent:
    calling it again replaces the handler. verbose: debug messages too."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrLines):
            logger.removeHandler(handler)
    handler = _StderrLines()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # one line per message, even where the root logger has handlers
    return handler


@contextlib.contextmanager
def lines_on_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, hh's messages go to stderr unless the caller has configured the "hh"
    logger (or enabled is False): what hh.train(verbose=True) does in a notebook."""
    logger = logging.getLogger(ROOT)
    if not enabled or logger.handlers:
        yield
        return
    level, propagate = logger.level, logger.propagate
    handler = show_on_stderr()
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
