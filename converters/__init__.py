"""hh.converters: Keras -> TFLite (float32, float16, dynamic range, full int8), the metadata
that carries labels and spec inside the file, and the verification gate. Needs TensorFlow.
Public names load lazily."""

from __future__ import annotations

from ..edge.lazy import lazy_exports

_EXPORTS = {
    "convert": "hh.converters.pipeline",
    "ConversionReport": "hh.converters.pipeline",
    "MODES": "hh.converters.tflite",
    "verify": "hh.converters.verify",
    "VerificationInput": "hh.converters.verify",
}
__getattr__, __dir__, __all__ = lazy_exports("hh.converters", _EXPORTS)
