"""Keras -> TFLite in four quantizations, each file carrying its labels and preprocessing spec.

    mode      weights   activations   input     output    file
    float32   float32   float32       float32   float32   model_float32.tflite
    float16   float16   float32       float32   float32   model_float16.tflite
    dynamic   int8      float32       float32   float32   model_dynamic.tflite
    int8      int8      int8          uint8     uint8     model_int8.tflite

Every exported graph takes a batch of exactly one image and outputs one value per class: a
binary model's single sigmoid p becomes [1-p, p], because stock classifiers (MediaPipe) refuse
an output narrower than the label list. The Keras model itself keeps its one-unit head. The
float files output probabilities; the int8 file outputs scores (logits; see export_graph),
which its quantization.json says, and the device turns into probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from ..edge.names import DisplayNames, names_filename
from ..edge.selftest import SelfTest
from ..edge.spec import LABELS_FILENAME, SPEC_FILENAME, UNKNOWN_LABEL, PreprocessingSpec
from .metadata import attach_metadata, build_model_metadata
from .unknown import UnknownScore, feature_model, unknown_logit


@dataclass(frozen=True)
class Mode:
    name: str
    description: str

    @property
    def filename(self) -> str:
        return f"model_{self.name}.tflite"


MODES = {
    "float32": Mode("float32", "float32 weights and activations"),
    "float16": Mode("float16", "float16 weights, float32 compute"),
    "dynamic": Mode("dynamic", "int8 weights, float activations (dynamic range)"),
    "int8": Mode("int8", "full integer: int8 ops, uint8 pixels in, uint8 scores out"),
}


def score_head(model: keras.Model) -> tuple[keras.KerasTensor, keras.layers.Dense] | None:
    """(the features the head reads, the head) when the model ends in a Dense layer with a
    softmax or sigmoid, as hh's models do; None otherwise."""
    head = model.layers[-1] if model.layers else None
    if not isinstance(head, keras.layers.Dense):
        return None
    activation = getattr(head.activation, "__name__", "")
    if activation not in ("softmax", "sigmoid"):
        return None
    return head.input, head


def score_weights(head: keras.layers.Dense) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) that give one score per class from the head's features: the head's own,
    and for a one-unit sigmoid's score s, [0, s] (whose softmax is [1-p, p])."""
    kernel, bias = head.get_weights()
    if kernel.shape[1] == 1:
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([np.zeros_like(bias), bias])
    return kernel, bias


def export_graph(
    model: keras.Model,
    spec: PreprocessingSpec,
    scores: bool = False,
    unknown: UnknownScore | None = None,
    temperature: float = 1.0,
    batch_size: int | None = 1,
) -> keras.Model:
    """The graph to export: batch 1, and one probability (or, with `scores`, one score) per class.

    Batch 1, not a dynamic batch: a device classifies one frame at a time, LiteRT.js (the
    browser runtime) refuses a dynamic batch dimension, and fixed shapes are what edge
    accelerators want. For a one-unit sigmoid, a fixed Dense appends [1-p, p].

    scores: leave the head's softmax (or sigmoid) out, so the model outputs the scores (logits)
    it would apply them to; a binary model's score s becomes [0, s], whose softmax is [1-p, p].
    The int8 export does this because TFLite's int8 SOFTMAX and LOGISTIC kernels compute in
    floating point with CPU-specific vector code: measured, they move one answer in 70 by an
    output step between x86-64 and arm64 while every op before them agrees to the bit. The
    device applies the softmax (hh.edge.runtime, the web app).

    unknown: add the label `unknown` after the classes, its score computed in the model
    (hh.converters.unknown); the outputs are then softmax probabilities (or scores) of
    the classes and unknown, a binary model's included. A model whose last class is `unknown`,
    trained from negative images, keeps its labels: that output becomes the larger of its own
    logit and the score's, so either way of knowing "none of the classes" answers.

    temperature: divide the head's weights and bias by it, so its logits are divided by it: the
    probabilities calibrated (hh.edge.calibration), no top-1 answer changed.

    batch_size: None for a Keras graph to run on batches (the workstation's reference answers).
    """
    if model.output_shape[-1] != spec.num_classes and (spec.class_mode != "binary" or model.output_shape[-1] != 1):
        raise ValueError(f"model outputs {model.output_shape[-1]} values for {spec.num_classes} classes")
    inputs = keras.Input(shape=(spec.height, spec.width, 3), batch_size=batch_size, name="image")
    found = score_head(model) if scores or unknown or temperature != 1.0 else None
    if (unknown is not None or temperature != 1.0) and found is None:
        raise ValueError("the unknown answer and calibration need a model that ends in a Dense softmax or sigmoid layer")
    if found is not None:
        features, head = found
        if unknown is not None:
            features_and_stages = feature_model(model)(inputs, training=False)
            body_out, pooled = features_and_stages[0], list(features_and_stages[1:])
        else:
            body_out = keras.Model(model.inputs, features, name=f"{model.name}_features")(inputs, training=False)
        kernel, bias = score_weights(head)
        trained = unknown is not None and spec.class_names[-1] == UNKNOWN_LABEL
        classes = kernel.shape[1] - 1 if trained else kernel.shape[1]
        linear = keras.layers.Dense(classes, name="scores", trainable=False)
        outputs = linear(body_out)
        linear.set_weights([kernel[:, :classes] / temperature, bias[:classes] / temperature])
        if unknown is not None:
            answer = unknown_logit(pooled, outputs, unknown)
            if trained:  # two Dense layers, not a slice of one: each quantizes on its own range
                own = keras.layers.Dense(1, name="trained_unknown", trainable=False)
                answer = keras.ops.maximum(own(body_out), answer)
                own.set_weights([kernel[:, classes:] / temperature, bias[classes:] / temperature])
            outputs = keras.layers.Concatenate(name="scores_and_unknown")([outputs, answer])
        if not scores:
            outputs = keras.layers.Softmax(name="probabilities")(outputs)
        return keras.Model(inputs, outputs, name=f"{model.name}_export")
    outputs = model(inputs, training=False)
    if model.output_shape[-1] != spec.num_classes:
        # [1-p, p] = p * [-1, 1] + [1, 0]: a constant Dense quantizes cleanly, unlike a Lambda.
        two = keras.layers.Dense(2, name="probabilities", trainable=False)
        outputs = two(outputs)
        two.set_weights([np.array([[-1.0, 1.0]], np.float32), np.array([1.0, 0.0], np.float32)])
    return keras.Model(inputs, outputs, name=f"{model.name}_export")


def representative_data(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    """Calibration samples for int8, raw 0-255 pixels as the model takes them.

    A black and a white frame go first so the observed input range is exactly [0, 255]: the
    uint8 input then gets scale 1, zero point 0, and camera pixels go in untouched.
    """
    height, width = images.shape[1:3]
    for level in (0.0, 255.0):
        yield [np.full((1, height, width, 3), level, np.float32)]
    for image in images:
        yield [image[None].astype(np.float32)]


def to_flatbuffer(
    model: keras.Model,
    spec: PreprocessingSpec,
    mode: str,
    calibration: np.ndarray | None = None,
    unknown: UnknownScore | None = None,
    temperature: float = 1.0,
) -> bytes:
    """The bare .tflite flatbuffer for `mode` (no metadata yet)."""
    export = export_graph(model, spec, scores=mode == "int8", unknown=unknown, temperature=temperature)
    return convert_graph(export, mode, calibration)


def convert_graph(export: keras.Model, mode: str, calibration: np.ndarray | None = None, uint8_output: bool = True) -> bytes:
    """A batch-1 Keras graph -> .tflite flatbuffer in `mode`. uint8_output=False keeps an int8
    graph's outputs in float (a probe of its values, hh.converters.unknown)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(export)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("full-integer conversion needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: representative_data(calibration)
        # Every op int8, or the conversion fails: no silent float fallback on the device.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        if uint8_output:
            converter.inference_output_type = tf.uint8
    elif mode != "float32":
        raise ValueError(f"unknown mode {mode!r}")
    return converter.convert()


QUANTIZATION_FILENAME = "quantization.json"


def tensor_io(tflite: bytes) -> str:
    """The input and output tensors' types and quantization, as JSON: runtimes that do not
    expose quantization parameters (LiteRT.js in the browser) read them from here. With
    "outputs": "scores" when the model outputs scores, not probabilities."""
    import json

    from ai_edge_litert.interpreter import Interpreter

    from ..edge.quiet import native_output_captured

    with native_output_captured():  # LiteRT announces its XNNPACK delegate
        interpreter = Interpreter(model_content=tflite)

    def describe(details: dict) -> dict:
        scale, zero_point = details["quantization"]
        return {"dtype": np.dtype(details["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}

    io: dict[str, object] = {
        "input": describe(interpreter.get_input_details()[0]),
        "output": describe(interpreter.get_output_details()[0]),
    }
    # No softmax or sigmoid anywhere in the graph: its outputs are scores, to be softmaxed.
    if not {op["op_name"] for op in interpreter._get_ops_details()} & {"SOFTMAX", "LOGISTIC"}:
        io["outputs"] = "scores"
    return json.dumps(io)


def with_contract(
    tflite: bytes,
    spec: PreprocessingSpec,
    mode: str,
    version: str,
    selftest: SelfTest | None = None,
    names: DisplayNames | None = None,
) -> bytes:
    """Embed labels and spec (standard metadata + zip) so one file is enough on the device,
    the golden self-test and the labels' display names when given."""
    extra = {QUANTIZATION_FILENAME: tensor_io(tflite).encode(), **(selftest.to_files() if selftest else {})}
    display = names.files() if names else {}
    metadata = build_model_metadata(
        spec,
        name=f"hh image classifier ({mode})",
        description=f"Classifies {spec.height}x{spec.width} RGB images into: {', '.join(spec.class_names)}.",
        version=version,
        extra_files={name: "hh self-test: an image, or the answers expected for them." for name in extra},
        localized_labels={names_filename(language): language for language in names.languages} if names else None,
    )
    files = {LABELS_FILENAME: spec.labels_text().encode(), SPEC_FILENAME: spec.to_json().encode(), **display, **extra}
    return attach_metadata(tflite, metadata, files)
