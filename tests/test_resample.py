"""The resize of the contract (hh.edge.resample) against its definition, computed in exact
fractions; and models of the older resize, which keep what they were trained with."""

import logging
from fractions import Fraction

import cv2
import numpy as np
import pytest

from hh.edge import preprocess
from hh.edge.preprocess import fit_to_spec
from hh.edge.resample import resize_exact
from hh.edge.spec import PreprocessingSpec

SHAPES = [((13, 17), (5, 7)), ((7, 5), (13, 11)), ((10, 20), (5, 10)), ((9, 4), (4, 9)), ((1, 5), (3, 2)), ((31, 3), (8, 8))]


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def area_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The mean of the covered source area, in fractions, rounded half up."""

    def cover(source: int, target: int, d: int) -> list[tuple[int, Fraction]]:
        lo, hi = Fraction(d * source, target), Fraction((d + 1) * source, target)
        return [(s, min(hi, s + 1) - max(lo, Fraction(s))) for s in range(int(lo), source) if min(hi, s + 1) > max(lo, s)]

    out = np.zeros((height, width, image.shape[2]), np.uint8)
    area = Fraction(image.shape[0], height) * Fraction(image.shape[1], width)
    for y in range(height):
        rows = cover(image.shape[0], height, y)
        for x in range(width):
            cols = cover(image.shape[1], width, x)
            for c in range(image.shape[2]):
                total = sum(wy * wx * int(image[sy, sx, c]) for sy, wy in rows for sx, wx in cols)
                out[y, x, c] = round_half_up(total / area)
    return out


def linear_exact_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's INTER_LINEAR_EXACT as hh.edge.resample states it, scalar."""

    def table(source: int, target: int):
        scale = 1 / (target / source)
        entries = []
        for d in range(target):
            f = scale * (d + 0.5) - 0.5
            i = int(np.floor(f))
            if i >= 0 and source > 1 and i < source - 1:
                w1 = round((f - i) * 256)  # Python's round: halves to even
                entries.append((i, i + 1, 256 - w1, w1))
            else:
                edge = source - 1 if i >= 0 and source > 1 else 0
                entries.append((edge, edge, 256, 0))
        return entries

    rows, cols = table(image.shape[0], height), table(image.shape[1], width)
    out = np.zeros((height, width, image.shape[2]), np.uint8)
    p = image.astype(np.int64)
    for y, (r0, r1, v0, v1) in enumerate(rows):
        for x, (c0, c1, w0, w1) in enumerate(cols):
            top = w0 * p[r0, c0] + w1 * p[r0, c1]
            bottom = w0 * p[r1, c0] + w1 * p[r1, c1]
            out[y, x] = (v0 * top + v1 * bottom + 2**15) >> 16
    return out


@pytest.mark.parametrize("shape, target", SHAPES)
def test_each_resize_gives_its_definition(shape, target):
    rng = np.random.default_rng(sum(shape) * 7 + sum(target))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_exact(image, *target, "area"), area_reference(image, *target))
    np.testing.assert_array_equal(resize_exact(image, *target, "bilinear"), linear_exact_reference(image, *target))
    rows = [min((2 * d + 1) * shape[0] // (2 * target[0]), shape[0] - 1) for d in range(target[0])]
    cols = [min((2 * d + 1) * shape[1] // (2 * target[1]), shape[1] - 1) for d in range(target[1])]
    np.testing.assert_array_equal(resize_exact(image, *target, "nearest"), image[np.ix_(rows, cols)])
    # A grey image is each channel alone.
    for interpolation in ("area", "bilinear", "nearest"):
        grey = resize_exact(image[:, :, 1].copy(), *target, interpolation)
        np.testing.assert_array_equal(grey, resize_exact(image, *target, interpolation)[:, :, 1])


def test_area_of_a_phone_photo_keeps_exact_sums_in_64_bits():
    """4000x3000 to 300: sums beyond 2^31 take int64, and the mean of a flat image is itself."""
    image = np.full((3000, 4000, 3), 255, np.uint8)
    image[:, :2000, 0] = 0
    out = resize_exact(image, 300, 300, "area")
    assert (out[:, :, 1:] == 255).all() and (out[:, :150, 0] == 0).all() and (out[:, 150:, 0] == 255).all()


def test_a_model_of_the_older_resize_keeps_opencvs_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(preprocess, "_warned_opencv_resize", False)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for interpolation, flag in preprocess.CV2_INTERPOLATION.items():
        spec = PreprocessingSpec(height=50, width=70, class_names=("a", "b"), interpolation=interpolation, resize="opencv")
        with caplog.at_level(logging.WARNING, logger="hh"):
            np.testing.assert_array_equal(fit_to_spec(frame, spec), cv2.resize(frame, (70, 50), interpolation=flag))
    warnings = [r for r in caplog.records if "older hh" in r.getMessage()]
    assert len(warnings) == 1 and "arm64" in warnings[0].getMessage()


def test_a_frame_thinner_than_the_models_aspect_still_crops_to_a_pixel():
    spec = PreprocessingSpec(height=64, width=128, class_names=("a", "b"), aspect="crop")
    for shape in ((1, 1, 3), (5000, 1, 3), (1, 3, 3)):
        frame = np.full(shape, 7, np.uint8)
        assert (fit_to_spec(frame, spec) == 7).all() and fit_to_spec(frame, spec).shape == (64, 128, 3)


@pytest.mark.parametrize(
    "image, size, interpolation, message",
    [
        (np.zeros((0, 5, 3), np.uint8), (8, 8), "area", "cannot resize"),
        (np.zeros((5, 5, 3), np.uint8), (0, 8), "nearest", "cannot resize"),
        (np.zeros((5, 5, 3, 1), np.uint8), (8, 8), "area", "cannot resize"),
        (np.zeros((5, 5, 3), np.uint8), (8, 8), "cubic", "interpolation 'cubic'"),
        (np.zeros((5, 5, 3), np.float32), (8, 8), "area", "uint8"),
    ],
)
def test_resize_refuses_what_it_cannot_resize_in_words(image, size, interpolation, message):
    with pytest.raises(ValueError, match=message):
        resize_exact(image, *size, interpolation)


def test_one_channel_gives_the_same_shape_from_every_resize():
    image = np.arange(60, dtype=np.uint8).reshape(6, 10, 1)
    assert {resize_exact(image, 4, 4, i).shape for i in ("bilinear", "area", "nearest")} == {(4, 4)}
