"""The errors hh raises on purpose. stdlib only, so every layer (device, trainer, converter,
Python callers) can raise and catch them without pulling in typer or TensorFlow.

Each carries the process exit code a command ends with:

    HHError              1   something hh refuses to do (base class)
      UserError          2   something the user can fix: a wrong folder, a bad file, a bad value
        ParameterError   2   one bad parameter value; the CLI names it by its flag
        SpecError        2   a preprocessing spec that cannot describe a model input
        ModelFileError   2   a model file that cannot be used
        MissingExtraError 2  a command whose extra (hh[train]) is not installed
      VerificationFailed 1   a converted model that disagrees with its source
      OutOfSpace         1   the disk filled up mid-run; what was committed is kept

Anything else that escapes is a bug and ends in a real traceback.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable

USER_ERROR_EXIT = 2
_MENTION = re.compile(r"\{param:(\w+)\}")
REFUSED_EXIT = 1


class HHError(Exception):
    """Base class: an error hh reports as one line, ending the command with `exit_code`.

    A message names the library's parameters as `{param:name}` (`{param:eval_dir}`): printed
    as the name by the library (`str(error)`), and as the command's flag (`--eval-dir`) by a
    CLI through `with_names`, so the same error reads right from Python and from a shell.
    """

    exit_code = REFUSED_EXIT

    def __init__(self, message: str = ""):
        self.template = message
        super().__init__(self.with_names(lambda name: name))

    def with_names(self, name_for: Callable[[str], str]) -> str:
        return _MENTION.sub(lambda match: name_for(match.group(1)), self.template)


class UserError(HHError):
    """Something the user can fix: a wrong folder, a bad file, a bad value."""

    exit_code = USER_ERROR_EXIT


class ParameterError(UserError):
    """One bad parameter value, named first: ParameterError("epochs", "must be at least 1")
    reads "epochs must be at least 1" from Python and "--epochs must be at least 1" in a shell."""

    def __init__(self, param: str, problem: str):
        self.param = param
        self.problem = problem
        super().__init__(f"{{param:{param}}} {problem}")


class SpecError(UserError):
    """A spec file or value that cannot describe a model input."""


class ModelFileError(UserError):
    """A model file that cannot be used: named, with the reason, in one line."""


class MissingExtraError(UserError):
    """A command whose dependencies (an extra such as hh[train]) are not installed."""


class VerificationFailed(HHError):
    """The converted model disagrees with its Keras source more than allowed."""


class OutOfSpace(HHError):
    """The disk filled up (or a file-size limit was hit) while writing."""


# errno values that all mean "this write does not fit": no space, quota, file-size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


# How a full disk reads when a library (Keras, TensorFlow) has wrapped the OSError in its own.
NO_SPACE_TEXTS = ("No space left on device", "File too large", "Disk quota exceeded")


def caused_by_full_disk(exc: BaseException) -> bool:
    """Whether a library's exception, or any it was raised from, is a full disk (or a file-size
    limit): then it is the disk's fault, not the file's that was being read or written."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if is_out_of_space(seen) or any(text in str(seen) for text in NO_SPACE_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def first_line(exc: BaseException, limit: int = 200) -> str:
    """What a library's exception says, as one line for an error message: its first line
    or its type when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def last_line(exc: BaseException, limit: int = 200) -> str:
    """The last line of an exception's message (OpenCV's cv2.error ends with the reason)."""
    text = str(exc).strip()
    return text.splitlines()[-1][:limit] if text else type(exc).__name__
