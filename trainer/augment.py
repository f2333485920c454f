"""Data augmentation for training batches: the field's differences, made up on the fly.

Photos taken by farmers differ from any training set in angle, distance, position, light,
focus and compression. Each training image gets random flips, a rotation, zoom and shift (one
affine warp), brightness, contrast and saturation changes (one lookup table and one blend), and
at some levels a blur or a JPEG re-compression, in the input pipeline only: validation images
are never augmented, and the exported model contains no augmentation ops (so the train/device
pixel parity holds for everything the device sees).

uint8 in, uint8 out, with OpenCV: on a CPU this is ~7x the images a second of the same work in
TensorFlow's float ops (bench/train_speed.py), and augmentation was the slowest part of an epoch.
OpenCV releases the GIL, so tf.data runs batches on every core.

Deterministic for a seed: each batch draws from a numpy generator seeded by tf.data's seeded
random stream, a fresh seed every batch of every epoch.

    level    flips           rotation   zoom        shift  brightness contrast  saturation  blur  jpeg
    light    left-right      +-10 deg   0.9-1.1     +-10%  x0.8-1.2   x0.8-1.2  x0.8-1.2    -     -
    field    both            any angle  0.8-1.25    +-10%  x0.5-1.5   x0.8-1.2  x0.8-1.2    -     -
    strong   both            any angle  0.75-1.33   +-20%  x0.6-1.4   x0.6-1.4  x0.6-1.4    1/4   1/4

(What each earned on real field photos and on field-like variants of them: BENCHMARKS.md.)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    vertical_flip: bool
    rotation_deg: float  # drawn from [-rotation_deg, rotation_deg]; 180 is any angle
    zoom: tuple[float, float]  # scale drawn log-uniformly from [low, high]
    shift: float  # fraction of the side
    brightness: float  # factor drawn from [1 - brightness, 1 + brightness]
    contrast: float
    saturation: float
    blur: float = 0.0  # share of images blurred (a Gaussian of sigma 0.5-1.5 px at the model's size)
    jpeg: float = 0.0  # share of images re-compressed as JPEG at quality 30-90


LEVELS = {
    "light": Augmentation(False, 10.0, (0.9, 1.1), 0.1, 0.2, 0.2, 0.2),
    "field": Augmentation(True, 180.0, (0.8, 1.25), 0.1, 0.5, 0.2, 0.2),
    "strong": Augmentation(True, 180.0, (0.75, 1.33), 0.2, 0.4, 0.4, 0.4, blur=0.25, jpeg=0.25),
}


def augment_image(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """One uint8 RGB image [H, W, 3], changed as `aug` allows; uint8 again (the model scales)."""
    h, w = image.shape[:2]
    angle = rng.uniform(-aug.rotation_deg, aug.rotation_deg)
    scale = float(np.exp(rng.uniform(np.log(aug.zoom[0]), np.log(aug.zoom[1]))))
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    matrix[0, 2] += rng.uniform(-aug.shift, aug.shift) * w
    matrix[1, 2] += rng.uniform(-aug.shift, aug.shift) * h
    if rng.random() < 0.5:  # mirror left-right: x -> w - 1 - x after the warp
        matrix[0] = -matrix[0]
        matrix[0, 2] += w - 1
    if aug.vertical_flip and rng.random() < 0.5:
        matrix[1] = -matrix[1]
        matrix[1, 2] += h - 1
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    # Brightness b and contrast c about the mean m, in one table: (x b - m b) c + m b.
    b = rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    c = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
    mean = float(out.mean())
    table = np.clip(np.arange(256) * (b * c) + mean * b * (1 - c), 0, 255).round().astype(np.uint8)
    out = cv2.LUT(out, table)
    s = rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = cv2.addWeighted(out, s, grey, 1 - s, 0)
    if aug.blur and rng.random() < aug.blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    if aug.jpeg and rng.random() < aug.jpeg:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None  # channel order kept both ways
        if decoded is not None:
            out = decoded
    return out


def augment_batch(images: np.ndarray, seed: int, level: str | Augmentation) -> np.ndarray:
    """A batch of uint8 images [B, H, W, 3], each augmented; the same seed, the same batch."""
    aug = LEVELS[level] if isinstance(level, str) else level
    rng = np.random.default_rng(np.uint64(np.int64(seed).view(np.uint64)))
    return np.stack([augment_image(image, rng, aug) for image in images]) if len(images) else images.copy()


def augmented(dataset, level: str, seed: int):
    """Batches of (images, labels) with `level` augmentation; the same seed, the same images."""
    import tensorflow as tf

    if level == "none":
        return dataset
    if level not in LEVELS:
        raise ValueError(f"augmentation must be none, {', '.join(LEVELS)}, got {level!r}")

    def batch(images, labels, batch_seed):
        changed = tf.numpy_function(lambda x, s: augment_batch(x, int(s), level), [images, batch_seed], tf.uint8, stateful=False)
        changed.set_shape(images.shape)
        return changed, labels

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda data, batch_seed: batch(data[0], data[1], batch_seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
