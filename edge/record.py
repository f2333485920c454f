"""hh-camera's --record: an append-only journal of per-frame results that survives power cuts.

A device in a field runs for hours and stops the way devices stop: SIGTERM from systemd, a
SIGKILL, a pulled plug. So rows go to the file as the session goes, never to a temporary file
renamed at the end: the journal is flushed and fsynced at least every second (a timer thread,
so rows written just before a camera outage are not held back either), and a power cut loses
at most the last second. The header is written once, when the file is new; an existing
journal with the same header is appended to; any other existing file is refused.

A cut can leave the last row half-written. `read_journal` drops such a torn last line, and
appending to a journal first cuts it off, so the file stays valid CSV.

When a write fails (a full SD card), the journal stops, keeps what it has, and says so once
through `on_error`: the live labels go on, a field session is not ended by its log.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import threading
from pathlib import Path

from .errors import ParameterError

FLUSH_SECONDS = 1.0


def journal_header(class_names) -> list[str]:
    """hh-camera's --record columns; "model" is the identity of the model that gave the row."""
    return ["frame", "time", "label", "retake", "probability", *class_names, "inference_ms", "model"]


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file to its last complete line (after a power cut mid-row)."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        # Walk back to the previous newline; rows are short, so read a tail block.
        block = min(size, 1 << 16)
        handle.seek(size - block)
        tail = handle.read(block)
        cut = tail.rfind(b"\n")
        handle.truncate(size - block + cut + 1 if cut >= 0 else 0)


def _last_complete_row(path: Path, width: int) -> list[str] | None:
    """The journal's last complete row (read from the end: a record of a long session is big)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - (1 << 16)))
        tail = handle.read().decode("utf-8", "replace")
    # The first line read is the header (a small file) or a row cut by the seek: never the answer.
    for line in reversed(tail.splitlines(keepends=True)[1:]):
        row = next(csv.reader(io.StringIO(line)), [])
        if line.endswith("\n") and len(row) == width:
            return row
    return None


class FrameJournal:
    """Append rows of hh-camera results to a CSV file, durably."""

    def __init__(
        self,
        path: str | Path,
        class_names,
        flush_seconds: float = FLUSH_SECONDS,
        on_error=None,
        header: list[str] | None = None,
        param: str = "record",
        model: str | None = None,
        max_bytes: int | None = None,
    ):
        """header: the columns, when not hh-camera's (journal_header); param: the parameter
        the path came from, for the error that refuses a foreign file; model: the identity of
        the model writing now. An existing journal whose last row names another model in its
        "model" column is refused: a journal continues only under the model that wrote its last row.
        max_bytes: recording stops (said once, through on_error) when the file reaches this size."""
        self.model = model
        self.max_bytes = max_bytes
        self.path = Path(path)
        self.param = param
        self.on_error = on_error or (lambda message: None)
        self.error: str | None = None
        self.rows = 0
        self.header = header or journal_header(class_names)
        self.appended_to = 0  # rows already in the file when this session started
        existing = self.path.exists() and self.path.stat().st_size > 0
        self.created = not self.path.exists()  # made by this session: removed again if it never starts
        if existing:
            self._check_existing()
            _cut_torn_tail(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            if not existing or self.path.stat().st_size == 0:
                self._writer.writerow(self.header)
                self._sync()
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise ParameterError(self.param, f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self._lock = threading.Lock()
        self._dirty = False
        if self.max_bytes is not None and self.size >= self.max_bytes:  # full already: not one row more
            with self._lock:
                self._stop_at_cap()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_seconds,), name="hh-record", daemon=True)
        self._flusher.start()

    def _check_existing(self) -> None:
        try:
            with open(self.path, newline="", encoding="utf-8") as handle:
                first = handle.readline()
                self.appended_to = sum(1 for _ in handle)
        except (OSError, UnicodeDecodeError):
            first = ""
        header = next(csv.reader(io.StringIO(first)), []) if first.endswith("\n") else []
        if header != self.header:
            raise ParameterError(
                self.param,
                f"{self.path} exists and is not an hh journal with these columns (for this model's labels); "
                "choose another file (an existing journal is appended to)",
            )
        if self.model is not None and "model" in header:
            last = _last_complete_row(self.path, len(header))
            before = last[header.index("model")] if last else self.model
            if before != self.model:
                raise ParameterError(
                    self.param,
                    f"{self.path} was last written with another model ({before}, this one is {self.model}); "
                    "choose another file: a journal continues only under the model that wrote its last row",
                )

    def write(self, row: list) -> None:
        with self._lock:
            if self.error is not None:
                return
            try:
                written = self._writer.writerow(row)  # characters: bytes for all but a non-ASCII label
                self.size += written if isinstance(written, int) else 0
            except OSError as exc:
                self._fail(exc)
                return
            self.rows += 1
            self._dirty = True
            if self.max_bytes is not None and self.size >= self.max_bytes:
                self._stop_at_cap()

    def _sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def sync(self) -> bool:
        """Put every row written so far on disk now, in the file at the journal's path (not
        one moved or removed meanwhile); False when the journal has failed."""
        with self._lock:
            if self.error is None and self._dirty:
                try:
                    self._sync()
                    if os.stat(self.path).st_ino != os.fstat(self._handle.fileno()).st_ino:
                        raise FileNotFoundError(errno.ENOENT, "moved or removed while it was written")
                except OSError as exc:
                    self._fail(exc)
                self._dirty = False
            return self.error is None

    def _stop_at_cap(self) -> None:
        """Stop recording at max_bytes; called with the lock held. What is written stays."""
        try:
            self._sync()
            self._handle.close()
        except OSError as exc:
            self._fail(exc)
            return
        rows = f"{self.rows} row{'' if self.rows == 1 else 's'}"
        self.error = f"{self.path}: recording stopped after {rows}, at its size cap ({(self.max_bytes or 0) / 1e6:g} MB)"
        self.on_error(self.error)

    def _fail(self, exc: OSError) -> None:
        """Stop recording after a failed write; called with the lock held."""
        self.error = f"{self.path}: recording stopped after {self.rows} rows ({exc.strerror or exc})"
        try:
            self._handle.close()
        except OSError:
            pass
        self.on_error(self.error)

    def _flush_loop(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            with self._lock:
                if self._dirty and self.error is None:
                    try:
                        self._sync()
                    except OSError as exc:
                        self._fail(exc)
                    self._dirty = False

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5.0)
        with self._lock:
            if self.error is None and not self._handle.closed:
                try:
                    self._sync()
                except OSError as exc:
                    self._fail(exc)
                    return
                self._handle.close()

    def discard_if_unused(self) -> None:
        """Close, and remove the file when this session made it and wrote no row into it: a
        refused start leaves no journal behind to block the corrected command (its header names
        this model's labels)."""
        self.close()
        if self.created and self.rows == 0:
            self.path.unlink(missing_ok=True)


def read_journal(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a journal; a torn last line (no newline, or too few fields) is dropped."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(complete)))
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    return header, [row for row in body if len(row) == len(header)]
