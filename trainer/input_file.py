"""Model inputs on disk: one uint8 file, a row per image, written once and read every epoch.

When a data set's model inputs are more than the RAM budget, the scan (which decodes every file
anyway, to check it) writes each one here instead of keeping it in memory, and every epoch then
reads rows from this file instead of decoding JPEGs again: decoding a 800x600 JPEG costs many
times more than reading its 300x300 model input back.

Rows are read with pread, not through a memory mapping: the pages of a mapped file count as the
process's resident memory until the kernel wants them back, so a 13 GB file read through a
mapping looks like 13 GB used (to the user, and to a container's memory limit). Copied out of
the OS page cache batch by batch, the process holds a few batches.

Each file has an index beside it (inputs-KEY.json) naming the image each row holds (path, size,
modification time and a digest of its bytes) and the pixel settings (size, interpolation,
aspect, resize) they were made with; KEY is a digest of both. A later run, or a resumed one,
whose images are all in an index takes their rows from that file: a changed image has another
digest, so it is never served the old pixels.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..edge.errors import OutOfSpace
from ..edge.files import atomic_write_text, is_out_of_space
from ..edge.spec import PreprocessingSpec

INDEX_VERSION = 1
PREFIX = "inputs-"
ABANDONED_AFTER_S = 60


def size_text(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e3:.0f} KB"


def pixel_settings(spec: PreprocessingSpec) -> dict:
    """What decides a model input's pixels, besides the image itself (not the class names)."""
    return {
        "height": spec.height,
        "width": spec.width,
        "interpolation": spec.interpolation,
        "aspect": spec.aspect,
        "resize": spec.resize,
        "color_order": spec.color_order,
    }


@dataclass(frozen=True)
class ImageVersion:
    """Which image a row holds: the file as it was when decoded."""

    file: str
    size: int
    mtime_ns: int
    digest: str | None
    # False for a file the scan found unusable: its row holds no pixels, but a later scan of
    # the same folder knows the file (and finds it bad again) without decoding anything.
    usable: bool = True

    def key(self) -> tuple[str, int, int]:
        return (self.file, self.size, self.mtime_ns)


class InputFileFailed(Exception):
    """The model inputs could not be kept on disk (no room, or the folder refused the file):
    training goes on, decoding the images every epoch."""


class InputFile:
    """An inputs file opened for reading: `file[rows]` gives [len(rows), H, W, 3] uint8."""

    def __init__(self, path: Path, shape: tuple[int, int, int], rows: Sequence[ImageVersion | None]):
        self.path = path
        self.row_shape = shape
        self.row_bytes = int(np.prod(shape))
        self.versions = rows
        self._fd = -1
        # Not blocking: a FIFO put in place of the file must not hang training.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != self.row_bytes * len(rows):
            os.close(fd)
            raise ValueError(f"{path} is not the {self.row_bytes * len(rows)}-byte file its index describes")
        self._fd = fd

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.versions), *self.row_shape)

    def __len__(self) -> int:
        return len(self.versions)

    def __getitem__(self, index) -> np.ndarray:
        if np.isscalar(index):
            return self.read(np.asarray([index]))[0]
        return self.read(np.asarray(index, np.int64))

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        for k, row in enumerate(rows):
            view = out[k].reshape(-1).data
            got = os.preadv(self._fd, [view], int(row) * self.row_bytes)
            if got != self.row_bytes:
                raise OSError(f"{self.path}: row {row} is short ({got} of {self.row_bytes} bytes); the file was changed")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()


class InputFileWriter:
    """A new inputs file, written row by row from any thread (pwrite), under a temporary name
    until commit. The whole size is reserved first: a disk without room refuses at once
    (OutOfSpace) instead of filling up halfway through a scan."""

    def __init__(self, folder: Path, count: int, spec: PreprocessingSpec):
        self.folder = folder
        self.spec = spec
        self.row_shape = (spec.height, spec.width, 3)
        self.row_bytes = int(np.prod(self.row_shape))
        self.count = count
        self._fd = -1
        self.tmp = folder / f".{PREFIX}{secrets.token_hex(6)}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            remove_abandoned(folder)
            self._fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            # Held while writing: another run sharing the folder sees the file is not abandoned.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if count:
                os.posix_fallocate(self._fd, 0, count * self.row_bytes)
        except OSError as exc:
            self.discard()
            if is_out_of_space(exc):
                size = size_text(count * self.row_bytes)
                raise InputFileFailed(f"no room for {size} of model inputs in {folder} ({exc.strerror})") from None
            raise InputFileFailed(f"cannot keep the model inputs in {folder} ({exc.strerror or exc})") from None

    def row(self) -> np.ndarray:
        """A buffer to decode one row into (then `write`)."""
        return np.empty(self.row_shape, np.uint8)

    def write(self, row: int, pixels: np.ndarray) -> None:
        data = np.ascontiguousarray(pixels, np.uint8).reshape(-1).data
        if os.pwrite(self._fd, data, row * self.row_bytes) != self.row_bytes:
            raise OSError(f"short write to {self.tmp}")

    def commit(self, versions: Sequence[ImageVersion | None]) -> InputFile:
        """Name the file after its contents, with its index beside it, and open it for reading.
        `versions`: the image of each row (None for rows of files that turned out bad)."""
        assert len(versions) == self.count
        settings = pixel_settings(self.spec)
        path = self.folder / f"{PREFIX}{index_key(settings, versions)}.u8"
        rows = [None if v is None else [v.file, v.size, v.mtime_ns, v.digest, v.usable] for v in versions]
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self.tmp, path)
            # The index last: an inputs file is found through its index only, so one whose
            # index is missing (a kill in between) is never read.
            index = {"version": INDEX_VERSION, "pixels": settings, "rows": rows}
            atomic_write_text(path.with_suffix(".json"), json.dumps(index, separators=(",", ":")))
            return InputFile(path, self.row_shape, versions)
        except (OSError, OutOfSpace, ValueError) as exc:
            self.discard()
            if path.is_file():
                path.unlink()
            raise InputFileFailed(f"cannot keep the model inputs in {self.folder} ({exc})") from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.tmp.unlink(missing_ok=True)


def remove_abandoned(folder: Path) -> None:
    """Remove inputs files a killed run left half-written (gigabytes at field scale): those
    whose writer no longer holds their lock, and not written to for a minute (a writer takes
    its lock just after creating the file)."""
    for tmp in folder.glob(f".{PREFIX}*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        if time.time() - os.fstat(fd).st_mtime < ABANDONED_AFTER_S:
            os.close(fd)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # still being written
        finally:
            os.close(fd)


def index_key(settings: dict, versions: Sequence[ImageVersion | None]) -> str:
    """The name of an inputs file: a digest of its pixel settings and of the image each row
    holds (the same images under other paths get a file of their own)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for v in versions:
        digest.update((f"{v.file}|{v.size}|{v.mtime_ns}|{v.digest}|{v.usable}" if v else "-").encode() + b"\n")
    return digest.hexdigest()[:20]


def read_index(path: Path) -> tuple[dict, list[ImageVersion | None]] | None:
    """(pixel settings, row versions) of one index, or None when it is not one hh wrote for
    the inputs file of its name (unreadable, another shape, or edited: its key differs)."""
    try:
        if not path.is_file():
            return None
        index = json.loads(path.read_text())
        if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or not isinstance(index["pixels"], dict):
            return None
        rows = [None if r is None else ImageVersion(str(r[0]), int(r[1]), int(r[2]), r[3], bool(r[4])) for r in index["rows"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError, OverflowError, RecursionError):
        return None
    if path.stem != f"{PREFIX}{index_key(index['pixels'], rows)}":
        return None
    return index["pixels"], rows


def find_input_file(
    folder: Path, spec: PreprocessingSpec, wanted: Sequence[ImageVersion], known: bool = False
) -> tuple[InputFile, np.ndarray] | None:
    """An inputs file in `folder` holding every wanted image at these pixel settings, and the
    row of each; None if there is none. An image is matched by path, size and modification
    time, and by digest where the wanted one has it (a resumed run's record does). With
    `known`, a file the scan found unusable matches too (its row holds no pixels)."""
    if not folder.is_dir():
        return None
    settings = pixel_settings(spec)
    for index_path in sorted(folder.glob(f"{PREFIX}*.json")):
        read = read_index(index_path)
        if read is None or read[0] != settings:
            continue
        row_of = {v.key(): (row, v.digest) for row, v in enumerate(read[1]) if v is not None and (known or v.usable)}
        rows = []
        for image in wanted:
            found = row_of.get(image.key())
            if found is None or (image.digest is not None and found[1] != image.digest):
                break
            rows.append(found[0])
        else:
            try:
                inputs = InputFile(index_path.with_suffix(".u8"), (spec.height, spec.width, 3), read[1])
            except (OSError, ValueError):
                continue
            return inputs, np.asarray(rows, np.int64)
    return None


def room_for(folder: Path, nbytes: int) -> bool:
    """Whether the disk under `folder` (or its nearest existing parent) has nbytes to spare."""
    import shutil

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free > nbytes
    except OSError:
        return False
