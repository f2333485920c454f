"""The resize of the preprocessing contract, with arithmetic defined to the last bit.

A model's answer must not depend on the CPU that computes its input. OpenCV's optimised
resizes do: its INTER_LINEAR and INTER_AREA give other pixels on arm64 (a Raspberry Pi) than on
x86-64, by one level on about a tenth of the values, because each CPU gets its own vectorised
code with its own rounding. So each interpolation hh offers is defined down to its integers:

- bilinear: OpenCV's INTER_LINEAR_EXACT, the OpenCV resize made to give the same bytes on every
  CPU. Source x = (x + 0.5) * S / D - 0.5 in IEEE double (OpenCV computes it in software
  floating point), clamped at the edges; the two weights w1 = (x - floor(x)) * 256 rounded
  (halves to even) and w0 = 256 - w1; each row blended in integers (row = w0 * p0 + w1 * p1),
  then the two rows with one rounding shift: out = (w0 * row0 + w1 * row1 + 2^15) >> 16.
- area: the exact mean of the source area an output pixel covers (partial pixels weighted by the
  part covered), rounded to the nearest level, halves up; shrinking and enlarging alike. hh's
  own: OpenCV's INTER_AREA sums in floating point and differs between CPUs.
- nearest: the source pixel under the output pixel's centre, floor((2x + 1) * S / (2D)), as
  PIL and tf.image.resize pick it.

Area and nearest are integer numpy (every weight a whole number of 1/D source pixels, every sum
an exact int32 or int64, one integer division): the same bytes on every CPU by construction.
web/src/preprocess.js computes all three with the same integers in a browser.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=64)
def nearest_table(source: int, target: int) -> np.ndarray:
    """For each output index, the source index under its centre."""
    d = np.arange(target, dtype=np.int64)
    return np.minimum((2 * d + 1) * source // (2 * target), source - 1).astype(np.intp)


@lru_cache(maxsize=64)
def area_table(source: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index, the source indices it covers and how much of each, as [target, taps]
    arrays (unused taps weigh 0). In units of 1/target source pixel: output d spans
    [d * S, (d + 1) * S), source s spans [s * D, (s + 1) * D); the weights of one output sum to S."""
    first = np.arange(target, dtype=np.int64) * source // target
    last = (np.arange(1, target + 1, dtype=np.int64) * source - 1) // target  # inclusive
    taps = int((last - first).max()) + 1
    index = np.minimum(first[:, None] + np.arange(taps)[None, :], source - 1)
    d = np.arange(target, dtype=np.int64)[:, None]
    start = np.maximum(d * source, index * target)
    end = np.minimum((d + 1) * source, (index + 1) * target)
    valid = first[:, None] + np.arange(taps)[None, :] <= last[:, None]
    weight = np.where(valid, np.maximum(end - start, 0), 0)
    return index.astype(np.intp), weight


def _accumulator(bound: int) -> type:
    """The narrowest integer type that holds every partial sum up to `bound` (int32 is twice as
    fast as int64 here; the result is the same integer either way)."""
    return np.int32 if bound < 2**31 else np.int64


def _round_divide(total: np.ndarray, denominator: int) -> np.ndarray:
    """total / denominator rounded to the nearest integer, halves up (total >= 0)."""
    return ((2 * total + denominator) // (2 * denominator)).astype(np.uint8)


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    # Rows first, then columns: two plain gathers, four times faster than one 2-D fancy index.
    rows = np.take(image, nearest_table(image.shape[0], height), axis=0)
    return np.take(rows, nearest_table(image.shape[1], width), axis=1)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR_EXACT)


def _area_axis(image: np.ndarray, axis: int, index: np.ndarray, weight: np.ndarray, acc: type) -> np.ndarray:
    """Weighted sums along one axis: out[..., d, ...] = sum_k weight[d, k] * image[..., index[d, k], ...]."""
    shape = [1] * image.ndim
    shape[axis] = -1
    total: np.ndarray = np.zeros((), acc)
    for k in range(index.shape[1]):
        total = total + np.take(image, index[:, k], axis=axis).astype(acc) * weight[:, k].astype(acc).reshape(shape)
    return total


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    source_h, source_w = image.shape[:2]
    rows, row_w = area_table(source_h, height)
    cols, col_w = area_table(source_w, width)
    acc = _accumulator(2 * 255 * source_h * source_w + source_h * source_w)
    # Along the axis that shrinks most first: the second pass then runs on the smaller array.
    if source_w * height <= source_h * width:
        partial = _area_axis(image, 0, rows, row_w, acc)
        total = _area_axis(partial, 1, cols, col_w, acc)
    else:
        partial = _area_axis(image, 1, cols, col_w, acc)
        total = _area_axis(partial, 0, rows, row_w, acc)
    return _round_divide(total, source_h * source_w)


RESIZERS = {"bilinear": resize_bilinear, "nearest": resize_nearest, "area": resize_area}


def resize_exact(image: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """A uint8 image [h, w] or [h, w, channels] resized to height x width, the same bytes on
    every CPU. Each channel is resized alone."""
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1 or height < 1 or width < 1:
        raise ValueError(f"cannot resize an image of shape {image.shape} to {height}x{width}")
    if interpolation not in RESIZERS:
        raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(RESIZERS)}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]  # one channel: as a grey image, the same shape from every resize
    return np.ascontiguousarray(RESIZERS[interpolation](image, height, width))
