"""Data augmentation for training batches: the field's differences, made up on the fly.

Photos taken by farmers differ from any training set in angle, distance, position and light.
Each training batch gets random flips, small rotations, zoom, shifts, and brightness, contrast
and saturation changes, in the tf.data input pipeline only: validation images are never
augmented, and the exported model contains no augmentation ops (so the train/device pixel
parity holds for everything the device sees).

Deterministic for a seed: every random draw is a stateless op seeded from a per-batch seed
that tf.data's seeded random stream provides, a fresh one every epoch.

    level    flips         rotation  zoom        shift   brightness  contrast  saturation
    light    left-right    +-10 deg  0.9-1.1     +-10%   x0.8-1.2    x0.8-1.2  x0.8-1.2
    strong   and up-down   +-30 deg  0.75-1.25   +-20%   x0.6-1.4    x0.6-1.4  x0.6-1.4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


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


def _uniform(n, seed, k: int, low: float, high: float) -> tf.Tensor:
    # Each parameter draws with its own stream (k) from the batch's seed.
    return tf.random.stateless_uniform([n], seed=tf.stack([seed, tf.constant(k, tf.int64)]), minval=low, maxval=high)


def _geometry(images: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    """Rotate, zoom and shift each image about its centre, reflecting at the borders."""
    n = tf.shape(images)[0]
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    angle = _uniform(n, seed, 1, -aug.rotation_deg, aug.rotation_deg) * (math.pi / 180)
    scale = _uniform(n, seed, 2, 1 - aug.zoom, 1 + aug.zoom)
    tx = _uniform(n, seed, 3, -aug.shift, aug.shift) * width
    ty = _uniform(n, seed, 4, -aug.shift, aug.shift) * height
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = tf.cos(angle), tf.sin(angle)
    # The op maps each output pixel back to the input: p_in = R^-1 (p_out - c - t) / s + c.
    a0, a1 = cos / scale, sin / scale
    b0, b1 = -sin / scale, cos / scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def _light(images: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    """Brightness (shade, sun), contrast (haze) and saturation (white balance), per image."""
    n = tf.shape(images)[0]
    brightness = _uniform(n, seed, 5, 1 - aug.brightness, 1 + aug.brightness)[:, None, None, None]
    contrast = _uniform(n, seed, 6, 1 - aug.contrast, 1 + aug.contrast)[:, None, None, None]
    saturation = _uniform(n, seed, 7, 1 - aug.saturation, 1 + aug.saturation)[:, None, None, None]
    images = images * brightness
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * contrast + mean
    grey = tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    return grey + (images - grey) * saturation


def _flip(images: tf.Tensor, seed: tf.Tensor, k: int, axis: int) -> tf.Tensor:
    n = tf.shape(images)[0]
    flip = _uniform(n, seed, k, 0.0, 1.0) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[axis]), images)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, level: str) -> tf.Tensor:
    """A batch of uint8 images [B, H, W, 3], augmented; uint8 again (the model scales)."""
    aug = LEVELS[level]
    x = tf.cast(images, tf.float32)
    x = _flip(x, seed, 8, axis=2)
    if aug.vertical_flip:
        x = _flip(x, seed, 9, axis=1)
    x = _geometry(x, seed, aug)
    x = _light(x, seed, aug)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def augmented(dataset: tf.data.Dataset, level: str, seed: int) -> tf.data.Dataset:
    """Batches of (images, labels) with `level` augmentation; the same seed, the same images."""
    if level == "none":
        return dataset
    if level not in LEVELS:
        raise ValueError(f"augmentation must be none, {' or '.join(LEVELS)}, got {level!r}")
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, batch_seed: (augment_batch(batch[0], batch_seed, level), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
