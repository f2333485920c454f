"""Keep library chatter off the user's terminal, without hiding real errors. stdlib only.

TensorFlow prints absl and oneDNN notes when it is imported (before any log level applies),
LiteRT announces its XNNPACK delegate, OpenCV and FFmpeg warn about every camera probe, and
the TFLite converter prints its temporary SavedModel to stdout. hh's commands promise one line
per error and only hh's own lines on success, so they call `quiet_libraries()` first; their
`--verbose` flag skips it. `import hh` does the same for Python callers when a name of it is
first used (HH_VERBOSE=1 keeps the libraries' output), silencing only the libraries' own
Python warnings, never the caller's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

_quiet = False


LIBRARY_MODULES = r"(tensorflow|tf_keras|keras|absl|h5py|ml_dtypes|google\.protobuf)(\.|$)"


def quiet_libraries(all_warnings: bool = True) -> None:
    """Silence TensorFlow, absl, OpenCV, FFmpeg and Python warnings for this process
    (all_warnings=False: only the warnings those libraries raise)."""
    global _quiet
    _quiet = True
    # Read when TensorFlow's and OpenCV's native code start, so set before they are imported;
    # the OpenCV log level is also applied now in case cv2 is already loaded.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET: no FFmpeg lines per retry
    if "cv2" in sys.modules:
        cv2 = sys.modules["cv2"]
        with contextlib.suppress(AttributeError):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if all_warnings:
        warnings.filterwarnings("ignore")
    else:
        warnings.filterwarnings("ignore", module=LIBRARY_MODULES)
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_output_captured(streams: tuple[int, ...] = (2,)) -> Iterator[io.StringIO]:
    """Send what native code writes to the given file descriptors into a buffer (only when
    quiet; a no-op otherwise). The buffer holds the text afterwards, for an error message.

    Python-level writes to sys.stdout are captured too when fd 1 is in `streams`.
    """
    captured = io.StringIO()
    if not _quiet:
        yield captured
        return
    saved = {}
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for fd in streams:
            try:
                getattr(sys, {1: "stdout", 2: "stderr"}[fd]).flush()
            except (AttributeError, ValueError, OSError):
                pass
            saved[fd] = os.dup(fd)
            os.dup2(sink.fileno(), fd)
        python_stdout = contextlib.redirect_stdout(io.StringIO()) if 1 in streams else contextlib.nullcontext()
        try:
            with python_stdout as text:
                yield captured
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", "replace"))
            if text is not None:
                captured.write(text.getvalue())


@contextlib.contextmanager
def scrubbed_stderr(secrets: list[str]) -> Iterator[None]:
    """Within the block, everything written to file descriptor 2 (hh's lines, Python's, and
    what OpenCV, FFmpeg and LiteRT print from native code) passes through a filter that
    replaces each of `secrets` (a stream URL's password, ...) with ***. A no-op without secrets.
    """
    if not secrets:
        yield
        return
    from .redact import scrub

    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def relay() -> None:
        pending = b""
        while chunk := os.read(read_end, 65536):
            pending += chunk
            # Whole lines only, so a secret is never split between two writes.
            cut = pending.rfind(b"\n") + 1 if len(pending) < 1 << 20 else len(pending)
            if cut:
                os.write(original, scrub(pending[:cut].decode("utf-8", "replace"), secrets).encode())
                pending = pending[cut:]
        if pending:
            os.write(original, scrub(pending.decode("utf-8", "replace"), secrets).encode())

    thread = threading.Thread(target=relay, name="hh-scrub", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the relay drains and ends
        thread.join(timeout=5.0)
        os.close(read_end)
        os.close(original)
