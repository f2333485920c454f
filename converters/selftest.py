"""Build the golden self-test that hh-convert packs into a .tflite (see hh.edge.selftest)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..edge.folders import ImageFolder
from ..edge.preprocess import read_image_bgr, to_model_rgb
from ..edge.runtime import Classifier
from ..edge.selftest import (
    IMAGE_PREFIX,
    MAX_STEPS,
    SelfTest,
    SelfTestCase,
    decode,
    device_outputs,
    selftest_image,
)
from ..edge.spec import PreprocessingSpec
from ..trainer.models import keras_probabilities


def build_selftest(keras_model, spec: PreprocessingSpec, images: ImageFolder, per_class: int, tflite_path: Path) -> SelfTest:
    """`per_class` held-out images per class, with the Keras model's probabilities and the
    converted model's (at `tflite_path`, the same graph) through the device path."""
    chosen = images.sample_per_class(per_class * len(spec.classes), seed=0)
    classifier = Classifier(tflite_path, num_threads=1)
    jpegs = [selftest_image(read_image_bgr(path, spec), spec) for path in chosen.paths]
    # Keras sees the same pixels the device will: the stored JPEG, decoded and fitted on the
    # device path (the training loader gives these same pixels; tests/test_edge.py).
    pixels = np.stack([to_model_rgb(decode(jpeg, spec), spec) for jpeg in jpegs])
    keras = keras_probabilities(keras_model, pixels, spec)
    cases, files = [], {}
    for i, (jpeg, label) in enumerate(zip(jpegs, chosen.labels)):
        name = f"{IMAGE_PREFIX}{i:03d}_{spec.class_names[label]}.jpg"
        raw, expected = device_outputs(classifier, jpeg)
        outputs = tuple(int(v) for v in raw.ravel()) if np.issubdtype(raw.dtype, np.integer) else None
        cases.append(SelfTestCase(name, spec.class_names[label], _rounded(keras[i]), _rounded(expected), outputs))
        files[name] = jpeg
    # Held to output steps when the model's output is integers (int8) and its resize is exact;
    # a model of OpenCV's own resize (an older run) moves by several steps between CPUs, so it
    # keeps the probability tolerance it was made with.
    counted = spec.resize == "exact" and all(case.raw is not None for case in cases)
    if not counted:
        cases = [replace(case, raw=None) for case in cases]
    return SelfTest(tuple(cases), files, max_steps=MAX_STEPS if counted else None)


def _rounded(values) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in values)
