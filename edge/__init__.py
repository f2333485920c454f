"""hh.edge: the TensorFlow-free core that everything else builds on, and the device code.

The core: the preprocessing contract (spec, preprocess), listing class folders (folders),
safe file output (files), the error types (errors). The device: the TFLite runtime wrapper
(runtime, metadata), the camera loop (camera, record), scoring image folders (evaluate) and
stage timing. numpy + OpenCV + LiteRT only: this package imports on a device without
TensorFlow. Public names load lazily.
"""

from __future__ import annotations

import os

from .lazy import lazy_exports

# OpenCV reads this when it loads: a backstop for formats whose header hh does not parse
# (TIFF). hh.edge.preprocess checks JPEG, PNG, GIF, BMP and WebP headers itself.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "178956970")

_EXPORTS = {
    "PreprocessingSpec": "hh.edge.spec",
    "Classifier": "hh.edge.runtime",
    "Classification": "hh.edge.runtime",
    "evaluate": "hh.edge.evaluate",
    "Evaluation": "hh.edge.evaluate",
    "read_image_bgr": "hh.edge.preprocess",
    "to_model_rgb": "hh.edge.preprocess",
    "fit_to_spec": "hh.edge.preprocess",
    "HHError": "hh.edge.errors",
    "UserError": "hh.edge.errors",
}
__getattr__, __dir__, __all__ = lazy_exports("hh.edge", _EXPORTS)
