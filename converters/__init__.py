"""hh.converters: Keras -> TFLite (float32, float16, dynamic range, full int8), the metadata
that carries labels and spec inside the file, and the verification gate. Needs TensorFlow.
Public names load lazily."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "convert_run": "hh.converters.pipeline",
    "ConversionReport": "hh.converters.pipeline",
    "MODES": "hh.converters.tflite",
    "verify": "hh.converters.verify",
    "VerificationInput": "hh.converters.verify",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hh.converters' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
