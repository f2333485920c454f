"""Many image files -> one array of model inputs, on every core. numpy + OpenCV, no TensorFlow.

Each file goes through the device's own code (hh.edge.preprocess: OpenCV decode, reduced DCT
scale for large JPEGs, fit_to_spec, BGR -> RGB), so training sees exactly the pixels hh-predict
and hh-camera would. OpenCV releases the GIL while it decodes and resizes, so a plain thread
pool runs at the machine's decode limit, where tf.data's numpy_function path did not
(BENCHMARKS.md, the loader).

Training reads batches from the array with numpy (hh.trainer.data.kept_batches), never as
one tensor: tf.data would copy a captured tensor of the whole set into its graph.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..edge.machine import usable_cores
from ..edge.preprocess import read_image_bgr, to_model_rgb
from ..edge.spec import PreprocessingSpec
from .input_file import InputFile, InputFileWriter


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array, on Linux anonymous memory mapped with MAP_POPULATE
    (page-aligned): the kernel backs every page in one call before decoding starts, where first
    touching numpy's own allocation page by page was slower and far more variable
    (hugepage-advised memory waits for the kernel to compact; BENCHMARKS.md)."""
    nbytes = int(np.prod(shape))
    populate = getattr(mmap, "MAP_POPULATE", None)
    if nbytes and populate is not None:
        mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
        return np.frombuffer(mapping, np.uint8).reshape(shape)
    return np.empty(shape, np.uint8)


def model_input_array(count: int, spec: PreprocessingSpec) -> np.ndarray:
    return aligned_empty((count, spec.height, spec.width, 3))


def read_model_input(path: str, spec: PreprocessingSpec, into: np.ndarray | None = None) -> np.ndarray:
    """One file -> the model's input [H, W, 3] RGB uint8, exactly as the device makes it.
    With `into`, the pixels are written there (a row of a model_input_array)."""
    return to_model_rgb(read_image_bgr(path, spec), spec, out=into)


def run_parallel(work: Callable[[int], object], count: int, workers: int | None = None) -> list:
    """work(0) ... work(count - 1) on a thread pool (one thread per usable core), in order."""
    with ThreadPoolExecutor(workers or usable_cores()) as pool:
        return list(pool.map(work, range(count)))


def decode_files(paths: Sequence[str], spec: PreprocessingSpec, workers: int | None = None) -> np.ndarray:
    """Files already checked (by the scan, or a recorded split) -> [N, H, W, 3] uint8, aligned."""
    pixels = model_input_array(len(paths), spec)
    run_parallel(lambda i: read_model_input(paths[i], spec, pixels[i]), len(paths), workers)
    return pixels


def decode_into_file(paths: Sequence[str], spec: PreprocessingSpec, writer: InputFileWriter, workers: int | None = None) -> None:
    """The same, each row written to a new inputs file instead of kept in RAM."""

    def one(i: int) -> None:
        row = writer.row()
        read_model_input(paths[i], spec, row)
        writer.write(i, row)

    run_parallel(one, len(paths), workers)


class DecodedImages:
    """Model inputs decoded once, a row per file, found by the path training loads: in RAM (an
    aligned array) or on disk (hh.trainer.input_file.InputFile); `pixels[rows]` reads either.

    One store can serve several folders (train and validation of one scanned folder, the
    shards of a distributed run): each takes the rows of its own paths.
    """

    def __init__(self, pixels: np.ndarray | InputFile, row_of: dict[str, int]):
        self.pixels = pixels
        self.row_of = row_of  # load path -> row of pixels

    @property
    def in_ram(self) -> bool:
        return isinstance(self.pixels, np.ndarray)

    def rows(self, paths: Sequence[str]) -> np.ndarray | None:
        """The rows of `paths`, or None if any of them was not decoded here."""
        try:
            return np.fromiter((self.row_of[path] for path in paths), np.int64, len(paths))
        except KeyError:
            return None

    @classmethod
    def of_files(cls, paths: Sequence[str], spec: PreprocessingSpec) -> DecodedImages:
        return cls(decode_files(paths, spec), {path: row for row, path in enumerate(paths)})
