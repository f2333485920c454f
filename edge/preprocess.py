"""Camera frame -> model input, following the PreprocessingSpec. OpenCV + numpy only.

`fit_to_spec` is the one crop-and-resize of the project: the trainer's tf.data pipeline calls
it too (through tf.numpy_function), so training and the device resize with the same code,
and tests/test_edge.py finds their model inputs identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from hh.edge.errors import UserError
from hh.edge.spec import PreprocessingSpec, center_crop_box

# Spec interpolation names -> OpenCV flags. INTER_NEAREST_EXACT, not INTER_NEAREST: it samples
# pixel centres (as PIL and tf.image.resize do); INTER_NEAREST is shifted by half a pixel.
CV2_INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST_EXACT,
    "area": cv2.INTER_AREA,
}


def fit_to_spec(image: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Crop (per spec.aspect) and resize (per spec.interpolation) a uint8 image to the model size.

    Channel order is left as it is: resizing works on each channel alone.
    """
    if spec.aspect == "crop":
        top, left, crop_h, crop_w = center_crop_box(image.shape[0], image.shape[1], spec.height, spec.width)
        image = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(image, (spec.width, spec.height), interpolation=CV2_INTERPOLATION[spec.interpolation])


def to_model_rgb(frame: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or greyscale, uint8) -> spec-sized RGB uint8 [H, W, 3]."""
    if frame is None or frame.size == 0:
        raise ValueError("empty frame")
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    # Resize first, convert colour second: the conversion then touches model-sized images only.
    resized = fit_to_spec(frame, spec)
    if resized.ndim == 2:
        return cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB)
    if resized.shape[2] == 4:
        return cv2.cvtColor(resized, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


class UnreadableImage(UserError):
    """An image file OpenCV cannot decode."""


def read_image_bgr(path: str) -> np.ndarray:
    """An image file as an OpenCV BGR frame (EXIF orientation applied), or UnreadableImage."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UnreadableImage(f"{path}: not a readable image")
    return image
