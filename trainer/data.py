"""tf.data input pipeline: the Keras 3 replacement for `ImageDataGenerator.flow_from_directory`.

Images of any size and format (JPEG, PNG, BMP, first frame of a GIF; greyscale, RGBA) are
decoded and resized at load time by the device's own code (hh.edge.preprocess: OpenCV decode,
reduced DCT scale for large JPEGs, fit_to_spec, BGR -> RGB), so the model trains on exactly
the pixels the device will give it.
Nothing on disk changes. Batches hold raw 0-255 uint8 pixels: scaling is the model's own
`Rescaling` layer.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from ..edge.folders import ImageFolder
from ..edge.spec import PreprocessingSpec
from .decode import ALIGNMENT, DecodedImages, read_model_input

# Cache decoded images in RAM below this many bytes; above it, decode every epoch.
DEFAULT_CACHE_BYTES = 4 * 1024**3


def load_image(path: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    """A file path tensor -> spec-sized RGB uint8, through the device's own code.

    OpenCV releases the GIL while it decodes and resizes, so tf.data's parallel map runs
    these on every core; OpenCV's uint8 resize is also twice as fast as tf.image.resize.
    """
    image = tf.numpy_function(lambda p: read_model_input(p.decode(), spec), [path], tf.uint8, stateful=False)
    image.set_shape([spec.height, spec.width, 3])
    return image


def should_cache(n_images: int, spec: PreprocessingSpec, budget: int = DEFAULT_CACHE_BYTES) -> bool:
    return n_images * spec.height * spec.width * 3 <= budget


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
    cache: bool | str | None = None,
    augment: str = "none",
    decoded: DecodedImages | None = None,
) -> tf.data.Dataset:
    """Batches of (uint8 pixels [B,H,W,3], labels) from an ImageFolder.

    Batches stay uint8: the model's Input casts and its Rescaling scales, inside the compiled
    step. Casting 128 images of 300x300 to float32 in the pipeline cost more than decoding them.

    cache: True to decode everything into RAM once (each epoch then only gathers shuffled
    batches from memory), a path for a tf.data cache file on disk, False to decode every
    epoch, None to choose RAM when it fits DEFAULT_CACHE_BYTES.

    decoded: images the scan already decoded into RAM (hh.trainer.scan.scan_and_decode); used
    when it holds every file of `folder`, whatever `cache` says.

    augment: "none", "light" or "strong" (hh.trainer.augment), applied to whole batches after
    the cache, so cached images stay the originals and every epoch draws new changes.
    """
    from .augment import augmented

    labels = encode_labels(folder.labels, spec)
    rows = decoded.rows(folder.paths) if decoded is not None else None
    if rows is None and (cache is True or (cache is None and should_cache(len(folder), spec))):
        decoded = DecodedImages.of_files(folder.paths, spec)
        rows = np.arange(len(folder))
    if rows is not None and decoded is not None:
        batches = in_memory_batches(shared_tensor(decoded.pixels, spec), rows, labels, batch_size, shuffle, seed)
        return augmented(batches, augment, seed).prefetch(tf.data.AUTOTUNE)
    paths = tf.data.Dataset.from_tensor_slices(list(folder.paths))
    ds = tf.data.Dataset.zip((paths, tf.data.Dataset.from_tensor_slices(labels)))
    if shuffle and not cache:
        # Without a cache, shuffle cheap file names, not decoded images.
        ds = ds.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda p, y: (load_image(p, spec), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if isinstance(cache, (str, os.PathLike)):
        ds = ds.cache(os.fspath(cache))
        if shuffle:
            ds = ds.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    return augmented(ds.batch(batch_size), augment, seed).prefetch(tf.data.AUTOTUNE)


def shared_tensor(pixels: np.ndarray, spec: PreprocessingSpec) -> tf.Tensor:
    """The pixels as a tensor over the same memory. An ALIGNMENT-byte aligned array
    (decode.aligned_empty) is adopted through DLPack, without a copy; anything else is copied."""
    if not pixels.size:
        return tf.zeros((0, spec.height, spec.width, 3), tf.uint8)
    if pixels.flags.c_contiguous and pixels.ctypes.data % ALIGNMENT == 0:
        return tf.experimental.dlpack.from_dlpack(pixels.__dlpack__())
    return tf.convert_to_tensor(np.ascontiguousarray(pixels))


def in_memory_batches(
    images: tf.Tensor, rows: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """Shuffled batches gathered from decoded images held in RAM (the given rows of `images`):
    a fresh order every epoch at memory speed, with no per-image work left."""
    rows, labels = tf.constant(rows), tf.constant(labels)
    order = tf.data.Dataset.range(len(labels))
    if shuffle:
        order = order.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return order.batch(batch_size).map(
        lambda idx: (tf.gather(images, tf.gather(rows, idx)), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE
    )


def load_images(folder: ImageFolder, spec: PreprocessingSpec) -> tuple[np.ndarray, np.ndarray]:
    """All images of a folder as a uint8 array [N,H,W,3] plus integer labels (for evaluation)."""
    return DecodedImages.of_files(folder.paths, spec).pixels, np.asarray(folder.labels, np.int64)
