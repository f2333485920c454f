"""Camera frame -> model input, following the PreprocessingSpec. OpenCV + numpy only.

`fit_to_spec` is the one crop-and-resize of the project: the trainer's tf.data pipeline calls
it too (through tf.numpy_function), so training and the device resize with the same code,
and tests/test_edge.py finds their model inputs identical. The resize itself is
hh.edge.resample's: the same bytes on x86-64 and arm64.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .errors import UserError
from .resample import resize_exact
from .spec import PreprocessingSpec, center_crop_box

log = logging.getLogger("hh.preprocess")

# What models made before hh defined its resizes exactly (spec `resize: "opencv"`) were trained
# with: OpenCV's own interpolations, whose pixels differ by a level between x86 and arm64. Such
# a model keeps getting what it was trained with. INTER_NEAREST_EXACT, not INTER_NEAREST: it
# samples pixel centres; INTER_NEAREST is shifted by half a pixel.
CV2_INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST_EXACT,
    "area": cv2.INTER_AREA,
}
_warned_opencv_resize = False


def warn_opencv_resize() -> None:
    """Say once per process that a model of the older resize is in use, and what it costs."""
    global _warned_opencv_resize
    if not _warned_opencv_resize:
        _warned_opencv_resize = True
        log.warning(
            "this model was made by an older hh and resizes with OpenCV's own interpolation, whose pixels differ "
            "by a level between x86 and arm64 (answers may differ by a few output steps); retrain and convert it "
            "with this hh for the same answers on every CPU"
        )


def fit_to_spec(image: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Crop (per spec.aspect) and resize (per spec.interpolation) a uint8 image to the model size.

    Channel order is left as it is: resizing works on each channel alone.
    """
    if spec.aspect == "crop":
        top, left, crop_h, crop_w = center_crop_box(image.shape[0], image.shape[1], spec.height, spec.width)
        image = image[top : top + crop_h, left : left + crop_w]
    if spec.resize == "opencv":
        warn_opencv_resize()
        return cv2.resize(image, (spec.width, spec.height), interpolation=CV2_INTERPOLATION[spec.interpolation])
    return resize_exact(image, spec.height, spec.width, spec.interpolation)


def to_model_rgb(frame: np.ndarray, spec: PreprocessingSpec, out: np.ndarray | None = None) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or greyscale, uint8) -> spec-sized RGB uint8 [H, W, 3],
    written into `out` (contiguous, that shape) when given: the trainer fills its array rows."""
    if frame is None or frame.size == 0:
        raise ValueError("empty frame")
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    # Resize first, convert colour second: the conversion then touches model-sized images only.
    resized = fit_to_spec(frame, spec)
    if resized.ndim == 2:
        return cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB, dst=out)
    if resized.shape[2] == 4:
        return cv2.cvtColor(resized, cv2.COLOR_BGRA2RGB, dst=out)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=out)


class UnreadableImage(UserError):
    """An image file OpenCV cannot decode."""


# A small file that claims a huge image (a decompression bomb: an 873 KB PNG of 30000x30000
# decodes to 2.7 GB) is refused from its header, before any pixel is decoded, by every reader.
# Twice Pillow's own default limit: larger than any camera's photo.
MAX_IMAGE_PIXELS = 178_956_970


# libjpeg can decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT itself, several times
# faster than decoding it whole: a 4000x3000 phone photo for a 300 px model needs 1000x750 at
# most. OpenCV exposes it as these read flags.
REDUCED_READS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
# Decoded, the image keeps at least this many times the model's side (the resize to the model
# then averages over enough pixels that the result hardly differs from a full decode).
REDUCED_MARGIN = 2
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header, without decoding; None if not a JPEG."""
    data = bytes(data[:65536]) if isinstance(data, np.ndarray) else data[:65536]
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        i += 2 + length
    return None


def image_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(height, width) from the header of a JPEG, PNG, GIF, BMP or WebP file, without
    decoding; None for another format or a header that does not say."""
    head = bytes(data[:65536]) if isinstance(data, np.ndarray) else data[:65536]
    if head[:2] == b"\xff\xd8":
        return jpeg_size(head)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[8:10], "little"), int.from_bytes(head[6:8], "little")
    if head[:2] == b"BM" and len(head) >= 26:
        width = int.from_bytes(head[18:22], "little", signed=True)
        height = int.from_bytes(head[22:26], "little", signed=True)
        return abs(height), abs(width)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return int.from_bytes(head[27:30], "little") + 1, int.from_bytes(head[24:27], "little") + 1
        if chunk == b"VP8 ":
            return int.from_bytes(head[28:30], "little") & 0x3FFF, int.from_bytes(head[26:28], "little") & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def too_large(size: tuple[int, int] | None, limit: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why an image of this header size is not decoded (a decompression bomb), or None."""
    if size is not None and size[0] * size[1] > limit:
        return f"too large to decode safely ({size[1]}x{size[0]} px)"
    return None


def reduced_scale(size: tuple[int, int] | None, spec: PreprocessingSpec | None) -> int:
    """1, 2, 4 or 8: how much smaller a JPEG of `size` may be decoded for `spec`."""
    if size is None or spec is None:
        return 1
    need = REDUCED_MARGIN * max(spec.height, spec.width)
    for scale, _ in REDUCED_READS:
        if min(size) // scale >= need:
            return scale
    return 1


def decode_image(
    data: np.ndarray, spec: PreprocessingSpec | None = None, size: tuple[int, int] | None = None
) -> np.ndarray | None:
    """Image file bytes -> an OpenCV BGR image (EXIF orientation applied), or None. With a
    spec, a large JPEG is decoded at reduced DCT scale (`reduced_scale`; `size` is its
    jpeg_size when the caller has read it already). The one decoder of the project: the
    trainer's loader, hh-predict and the self-test all read files through it."""
    if not data.size:
        return None
    size = size or image_size(data)
    problem = too_large(size)
    if problem:
        raise UnreadableImage(problem)
    scale = reduced_scale(size if data[:2].tobytes() == b"\xff\xd8" else None, spec)
    flag = dict(REDUCED_READS).get(scale, cv2.IMREAD_COLOR)
    return cv2.imdecode(data, flag)


def read_image_bgr(path: str, spec: PreprocessingSpec | None = None) -> np.ndarray:
    """An image file as an OpenCV BGR frame (EXIF orientation applied), or UnreadableImage.
    With a spec, large JPEGs are decoded at reduced DCT scale (see decode_image)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot read ({exc.strerror})") from None
    try:
        image = decode_image(data, spec)
    except UnreadableImage as exc:
        raise UnreadableImage(f"{path}: {exc}") from None
    if image is None:
        raise UnreadableImage(f"{path}: not a readable image")
    return image
