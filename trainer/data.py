"""tf.data input pipeline: the Keras 3 replacement for `ImageDataGenerator.flow_from_directory`.

Images of any size and format (JPEG, PNG, BMP, first frame of a GIF; greyscale, RGBA) are
decoded and resized at load time by the device's own code (hh.edge.preprocess: OpenCV decode,
reduced DCT scale for large JPEGs, fit_to_spec, BGR -> RGB), so the model trains on exactly
the pixels the device will give it.
Nothing on disk changes. Batches hold raw 0-255 uint8 pixels: scaling is the model's own
`Rescaling` layer.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..edge.folders import ImageFolder
from ..edge.machine import usable_cores
from ..edge.spec import PreprocessingSpec
from .decode import DecodedImages, decode_files, read_model_input
from .input_file import InputFile

# Batches made ahead of the one training takes: enough to hide a batch's gather or read, and a
# fixed number, so the pipeline's memory is a few batches whatever the data set's size.
PREFETCH_BATCHES = 2


def load_image(path: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    """A file path tensor -> spec-sized RGB uint8, through the device's own code.

    OpenCV releases the GIL while it decodes and resizes, so tf.data's parallel map runs
    these on every core; OpenCV's uint8 resize is also twice as fast as tf.image.resize.
    """
    image = tf.numpy_function(lambda p: read_model_input(p.decode(), spec), [path], tf.uint8, stateful=False)
    image.set_shape([spec.height, spec.width, 3])
    return image


def encode_labels(labels, spec: PreprocessingSpec) -> np.ndarray:
    labels = np.asarray(labels, np.int64)
    if spec.class_mode == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(spec.num_classes, dtype=np.float32)[labels]


def make_dataset(
    folder: ImageFolder,
    spec: PreprocessingSpec,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    augment: str = "none",
    decoded: DecodedImages | None = None,
) -> tf.data.Dataset:
    """Batches of (uint8 pixels [B,H,W,3], labels) from an ImageFolder.

    Batches stay uint8: the model's Input casts and its Rescaling scales, inside the compiled
    step. Casting 128 images of 300x300 to float32 in the pipeline cost more than decoding them.

    decoded: the model inputs decoded once (by the scan, hh.trainer.run_data.scan_keeping, or
    for a resumed run recorded_inputs), in RAM or in an inputs file on disk; used when it holds
    every file of `folder`. Without it every epoch decodes the files again.

    augment: "none", "light" or "strong" (hh.trainer.augment), applied to whole batches after
    they are read, so kept images stay the originals and every epoch draws new changes.
    """
    from .augment import augmented

    labels = encode_labels(folder.labels, spec)
    rows = decoded.rows(folder.paths) if decoded is not None else None
    if rows is not None and decoded is not None:
        batches = kept_batches(decoded.pixels, spec, rows, labels, batch_size, shuffle, seed)
        return augmented(batches, augment, seed).prefetch(PREFETCH_BATCHES)
    paths = tf.data.Dataset.from_tensor_slices(list(folder.paths))
    ds = tf.data.Dataset.zip((paths, tf.data.Dataset.from_tensor_slices(labels)))
    if shuffle:
        # Shuffle cheap file names, not decoded images.
        ds = ds.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda p, y: (load_image(p, spec), y), num_parallel_calls=usable_cores(), deterministic=not shuffle)
    return augmented(ds.batch(batch_size), augment, seed).prefetch(PREFETCH_BATCHES)


def order_batches(count: int, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of positions 0..count-1: a fresh order every epoch when shuffled."""
    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return order.batch(batch_size)


def kept_batches(
    pixels: np.ndarray | InputFile,
    spec: PreprocessingSpec,
    rows: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int,
) -> tf.data.Dataset:
    """Batches of the given rows of model inputs kept in RAM (an array) or on disk (an inputs
    file, one read per image): a fresh order every epoch, no per-image work left but a copy,
    and only the batches in flight held besides.

    numpy reads the rows, inside a numpy_function; the pixels never become a tensor: tf.data
    rewrites a dataset's graph before it runs, and a tensor the graph captures is copied into
    it whole (a second 5.7 GB at 21,000 photos of 300 px, measured)."""

    def read(idx: np.ndarray) -> np.ndarray:
        return pixels[rows[idx]]

    def batch(idx: tf.Tensor):
        images = tf.numpy_function(read, [idx], tf.uint8, stateful=False)
        images.set_shape([None, spec.height, spec.width, 3])
        return images, tf.gather(labels, idx)

    return order_batches(len(labels), batch_size, shuffle, seed).map(batch, num_parallel_calls=usable_cores())


def input_chunks(folder: ImageFolder, spec: PreprocessingSpec, decoded: DecodedImages | None, chunk: int = 256):
    """The folder's model inputs in order, `chunk` images at a time: from `decoded` when it
    holds them all, else decoded from the files. Memory: one chunk, whatever the folder's size."""
    rows = decoded.rows(folder.paths) if decoded is not None else None
    for start in range(0, len(folder), chunk):
        if rows is not None and decoded is not None:
            yield decoded.pixels[rows[start : start + chunk]]
        else:
            yield decode_files(folder.paths[start : start + chunk], spec)


def load_images(folder: ImageFolder, spec: PreprocessingSpec) -> tuple[np.ndarray, np.ndarray]:
    """All images of a folder as a uint8 array [N,H,W,3] plus integer labels (for evaluation)."""
    return decode_files(folder.paths, spec), np.asarray(folder.labels, np.int64)
