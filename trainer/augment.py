"""Data augmentation for training batches: the field's differences, made up on the fly.

Photos taken by farmers differ from any training set in angle, distance, position and light.
Each training batch gets random flips, small rotations, zoom, shifts, and brightness, contrast
and saturation changes, in the tf.data input pipeline only: validation images are never
augmented, and the exported model contains no augmentation ops (so the train/device pixel
parity holds for everything the device sees).

Deterministic for a seed: each batch's draws come from a numpy generator seeded by the batch's
seed, which tf.data's seeded random stream provides, a fresh one every epoch. The work is
OpenCV's on uint8 images (one warp, one colour transform per image), which releases the GIL:
TensorFlow's float32 projective transform of the same made the augmentation, not the model, the
slowest part of a CPU epoch (142 images/s at 300 px on 2 cores, BENCHMARKS.md 16).

    level    flips         rotation  zoom        shift   brightness  contrast  saturation
    light    left-right    +-10 deg  0.9-1.1     +-10%   x0.8-1.2    x0.8-1.2  x0.8-1.2
    strong   and up-down   +-30 deg  0.75-1.25   +-20%   x0.6-1.4    x0.6-1.4  x0.6-1.4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import tensorflow as tf

from ..edge.machine import usable_cores


@dataclass(frozen=True)
class Augmentation:
    vertical_flip: bool
    rotation_deg: float
    zoom: float  # scale drawn from [1 - zoom, 1 + zoom]
    shift: float  # fraction of the side
    brightness: float  # factor drawn from [1 - brightness, 1 + brightness]
    contrast: float
    saturation: float


LEVELS = {
    "light": Augmentation(False, 10.0, 0.1, 0.1, 0.2, 0.2, 0.2),
    "strong": Augmentation(True, 30.0, 0.25, 0.2, 0.4, 0.4, 0.4),
}


def _warp_matrix(rng: np.random.Generator, aug: Augmentation, height: int, width: int) -> np.ndarray:
    """Rotate, zoom and shift about the centre, as the map from each output pixel back to the
    input: p_in = R^-1 (p_out - c - t) / s + c (OpenCV's WARP_INVERSE_MAP)."""
    angle = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    scale = rng.uniform(1 - aug.zoom, 1 + aug.zoom)
    tx, ty = rng.uniform(-aug.shift, aug.shift) * width, rng.uniform(-aug.shift, aug.shift) * height
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    a0, a1, b0, b1 = cos / scale, sin / scale, -sin / scale, cos / scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    return np.array([[a0, a1, a2], [b0, b1, b2]])


GREY = np.array([0.299, 0.587, 0.114])  # luma weights, RGB


def _colour_matrix(rng: np.random.Generator, aug: Augmentation, mean: float) -> np.ndarray:
    """Brightness b (shade, sun), contrast c about the image's mean m (haze) and saturation s
    about its grey (white balance), in that order: all linear, so one 3x4 matrix per image,
    x -> c b S x + (1 - c) b m, with S = s I + (1 - s) 1 GREY (the grey weights sum to 1)."""
    b = rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    c = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
    s = rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    saturate = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), GREY)
    return np.hstack([c * b * saturate, np.full((3, 1), (1 - c) * b * mean)])


def augment_batch(images: np.ndarray, seed: int, level: str) -> np.ndarray:
    """A batch of uint8 RGB images [B, H, W, 3], augmented; uint8 again (the model scales)."""
    aug = LEVELS[level]
    rng = np.random.default_rng(seed % 2**63)
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for i, image in enumerate(images):
        if rng.random() < 0.5:
            image = image[:, ::-1]
        if aug.vertical_flip and rng.random() < 0.5:
            image = image[::-1]
        warped = cv2.warpAffine(
            np.ascontiguousarray(image),
            _warp_matrix(rng, aug, height, width),
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,  # a leaf's edge continues: no black corners to learn
        )
        mean = float(np.mean(cv2.mean(warped)[:3]))
        out[i] = cv2.transform(warped, _colour_matrix(rng, aug, mean))  # rounded and clipped to 0-255
    return out


def augmented(dataset: tf.data.Dataset, level: str, seed: int) -> tf.data.Dataset:
    """Batches of (images, labels) with `level` augmentation; the same seed, the same images."""
    if level == "none":
        return dataset
    if level not in LEVELS:
        raise ValueError(f"augmentation must be none, {' or '.join(LEVELS)}, got {level!r}")
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def apply(batch, batch_seed):
        images = tf.numpy_function(
            lambda pixels, s: augment_batch(pixels, int(s), level), [batch[0], batch_seed], tf.uint8, stateful=False
        )
        images.set_shape(batch[0].shape)
        return images, batch[1]

    return tf.data.Dataset.zip((dataset, seeds)).map(apply, num_parallel_calls=usable_cores(), deterministic=True)
