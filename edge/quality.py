"""Is this frame worth classifying? The image-quality gate. numpy + OpenCV.

In a field, blur (a shaking hand, a close leaf out of focus), shade, glare and an empty view
give confident wrong labels; a score threshold does not catch them, because the model is
confident about what it has never seen. So before a frame's label is trusted, three measures
of the model-sized image are compared with what the training images showed:

    sharpness    variance of the Laplacian of the grey image (blur lowers it)
    brightness   mean grey level (shade lowers it, glare raises it)
    contrast     standard deviation of the grey level (an empty or washed-out view lowers it)

The thresholds are calibrated by hh-convert on the model's own training images and travel in
the model's spec: a frame is "retake" when it is darker, brighter, blurrier or flatter than
almost every training image (beyond the 1st/99th percentile, with a margin of half that
distance again), so a model trained on dim photos accepts dim frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .spec import QualityThresholds

RETAKE = "retake"
# Why a frame should be retaken, in the words shown to the person holding the camera.
TOO_DARK, TOO_BRIGHT, LOW_CONTRAST, BLURRY = "too dark", "too bright", "low contrast", "blurry"
REASONS = (TOO_DARK, TOO_BRIGHT, LOW_CONTRAST, BLURRY)  # in the order check() tries them
PERCENTILE = 1.0  # beyond what 99% of the training images show ...
MARGIN = 0.5  # ... and then half as far again: calibration images are a sample


@dataclass(frozen=True)
class QualityMeasures:
    sharpness: float
    brightness: float
    contrast: float


def measure(rgb: np.ndarray) -> QualityMeasures:
    """The three measures of one model-sized RGB (or greyscale) uint8 image."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    mean, std = cv2.meanStdDev(grey)
    return QualityMeasures(float(laplacian.var()), float(mean[0, 0]), float(std[0, 0]))


def calibrate(images: np.ndarray) -> QualityThresholds:
    """Thresholds from model-sized training images [N, H, W, 3]."""
    if len(images) == 0:
        raise ValueError("quality calibration needs images")
    measures = [measure(image) for image in images]
    sharpness = np.array([m.sharpness for m in measures])
    brightness = np.array([m.brightness for m in measures])
    contrast = np.array([m.contrast for m in measures])
    low_b, high_b = np.percentile(brightness, [PERCENTILE, 100 - PERCENTILE])
    return QualityThresholds(
        # Sharpness and contrast are scale-like (a blur divides them): a margin by factor.
        min_sharpness=float(np.percentile(sharpness, PERCENTILE) * (1 - MARGIN)),
        min_contrast=float(np.percentile(contrast, PERCENTILE) * (1 - MARGIN)),
        # Brightness lives on 0-255: the margin is half the way on towards black or white.
        min_brightness=float(low_b * (1 - MARGIN)),
        max_brightness=float(high_b + (255 - high_b) * MARGIN),
        calibrated_on=len(images),
    )


def check(measures: QualityMeasures, thresholds: QualityThresholds) -> str | None:
    """Why a frame should be retaken (one of REASONS), or None when it is fine.

    Exposure first: a dark or blank frame is also flat and blurry-looking, and "too dark"
    is what the person holding the camera can fix.
    """
    if measures.brightness < thresholds.min_brightness:
        return TOO_DARK
    if measures.brightness > thresholds.max_brightness:
        return TOO_BRIGHT
    if measures.contrast < thresholds.min_contrast:
        return LOW_CONTRAST
    if measures.sharpness < thresholds.min_sharpness:
        return BLURRY
    return None
