"""The TFLite classifier: load a .tflite, feed it frames, get labels. numpy + OpenCV + LiteRT.

Tensor types are read from the interpreter, never assumed: float32 and float16-weight models
take float pixels 0-255, full-int8 models take uint8 (or int8) pixels quantized with the input
tensor's scale and zero point, and integer outputs are dequantized the same way.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ModelFileError, ParameterError, first_line
from .metadata import declared_outputs, identity_line, model_identity, read_associated_files, read_model_bytes, read_model_spec
from .names import DisplayNames, packed_names
from .preprocess import to_model_rgb
from .quality import check, measure
from .quiet import native_output_captured
from .spec import QualityThresholds

# In order of preference: LiteRT is the maintained successor of tflite-runtime and works with
# numpy 2 (tflite-runtime 2.14 crashes at load under numpy 2, and is slower: the measurement is
# in docs/architecture.md); tf.lite is the last resort on a workstation.
RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")
# A probe output further than this from a probability distribution means the model gives scores.
PROBABILITY_TOLERANCE = 0.02


def _interpreter_class(runtime: str):
    if runtime == "ai-edge-litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    if runtime == "tflite-runtime":
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    import tensorflow as tf  # the last resort, on a workstation: never reached on a device

    return tf.lite.Interpreter


def load_interpreter(model_path: str | Path, num_threads: int | None = None, runtimes=RUNTIMES, data: bytes | None = None):
    """(interpreter with tensors allocated, name of the runtime that loaded it). The interpreter
    gets the model's bytes (`data`, else read from the file), never the file: a model
    overwritten in place while it runs would take a mapped file's pages from under it."""
    path = Path(model_path)
    if num_threads is not None and num_threads < 1:
        raise ParameterError("num_threads", f"must be at least 1, got {num_threads}")
    if data is None:
        data = read_model_bytes(path)
    for runtime in runtimes:
        try:
            interpreter_class = _interpreter_class(runtime)
        except ImportError:
            continue
        try:
            # LiteRT announces its XNNPACK delegate on stderr; hh's commands keep that quiet.
            with native_output_captured():
                interpreter = interpreter_class(model_content=data, num_threads=num_threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: cannot be loaded by {runtime} ({first_line(exc)})") from None
        return interpreter, runtime
    raise ModelFileError(f"no TFLite runtime is installed; pip install {RUNTIMES[0]}")


@dataclass(frozen=True)
class Classification:
    label: str
    probability: float
    index: int
    probabilities: np.ndarray  # one per class, in spec.class_names order

    def as_dict(self, class_names) -> dict:
        return {
            "label": self.label,
            "probability": round(float(self.probability), 5),
            "probabilities": {name: round(float(p), 5) for name, p in zip(class_names, self.probabilities)},
        }


class FrameClassification(NamedTuple):
    """One frame through the device path: the answer, the quality gate's verdict, and the
    milliseconds each stage took."""

    classification: Classification
    retake: str | None  # why the frame should be retaken ("blurry", ...), or None
    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.invoke_ms + self.postprocess_ms


class Classifier:
    """One .tflite image classifier with its preprocessing contract.

    >>> clf = Classifier("model_int8.tflite", num_threads=2)
    >>> clf.classify(cv2.imread("leaf.jpg")).label
    """

    def __init__(self, model_path: str | Path, num_threads: int | None = None, runtimes=RUNTIMES, data: bytes | None = None):
        self.model_path = Path(model_path)
        # Read once (or given, already checked: hh.edge.trust): interpreter, spec, self-test and
        # identity all come from the same bytes, whatever happens to the file afterwards.
        self.model_bytes = data if data is not None else read_model_bytes(model_path)
        self.interpreter, self.runtime = load_interpreter(model_path, num_threads, runtimes, self.model_bytes)
        self.spec, self.spec_source = read_model_spec(model_path, self.model_bytes)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{model_path}: has {len(inputs)} inputs; an image classifier has one")
        if len(outputs) != 1:
            raise ModelFileError(f"{model_path}: has {len(outputs)} outputs; an image classifier has one")
        self._input, self._output = inputs[0], outputs[0]
        shape = tuple(int(d) for d in self._input["shape"])
        signature = tuple(int(d) for d in self._input.get("shape_signature", shape))
        if len(shape) != 4 or shape[3] != 3:
            raise ModelFileError(f"{model_path}: input shape {list(shape)} is not [1, height, width, 3]")
        if len(signature) == 4 and (signature[1] < 1 or signature[2] < 1):
            raise ModelFileError(
                f"{model_path}: input size is not fixed (shape {list(signature)}); export the model with a fixed height and width"
            )
        if shape[1:3] != self.spec.size:
            raise ModelFileError(
                f"{model_path}: input is {shape[1]}x{shape[2]} but its preprocessing spec says "
                f"{self.spec.height}x{self.spec.width}"
            )
        width = int(self._output["shape"][-1])
        self._sigmoid_output = width == 1 and self.spec.class_mode == "binary"
        if width != self.spec.num_classes and not self._sigmoid_output:
            raise ModelFileError(f"{model_path}: output has {width} values but there are {self.spec.num_classes} labels")
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        self._in_scale, self._in_zero = self._input["quantization"]
        self._out_scale, self._out_zero = self._output["quantization"]
        # Raw uint8 pixels go straight in when the quantization is the identity (our int8 export).
        self._identity_input = self.input_dtype == np.uint8 and self._in_scale == 1.0 and self._in_zero == 0
        self.outputs_scores = False
        declared = declared_outputs(model_path, self.model_bytes)
        self.outputs_scores = declared == "scores" if declared else self._probe_gives_scores()

    def _probe_gives_scores(self) -> bool:
        """Whether the model outputs scores (logits) rather than probabilities, from its
        answer to one mid-grey image: probabilities lie in [0, 1] and sum to 1."""
        grey = np.full((self.spec.height, self.spec.width, 3), 128, np.uint8)
        values = self.invoke(self.quantize_input(grey))
        outside = values.min() < -PROBABILITY_TOLERANCE or values.max() > 1 + PROBABILITY_TOLERANCE
        return bool(outside or abs(float(values.sum()) - 1.0) > PROBABILITY_TOLERANCE)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @functools.cached_property
    def identity(self) -> str:
        """The model's identity (hh.edge.metadata.model_identity), of the bytes it was loaded from."""
        return model_identity(self.model_bytes)

    @functools.cached_property
    def model_id(self) -> dict:
        """What names this model in records, reports and the live view: the file's identity and
        the training run that made it (from its spec; None for models converted before runs were named)."""
        run = self.spec.run
        return {"id": self.identity, "run": run.id if run else None, "trained": run.started if run else None}

    def identity_line(self) -> str:
        """The model's identity for a person (hh.edge.metadata.identity_line)."""
        return identity_line(self.identity, self.spec.run)

    @functools.cached_property
    def display_names(self) -> DisplayNames:
        """The labels' names in other languages that the model carries (hh-convert --names)."""
        return packed_names(read_associated_files(self.model_path, self.model_bytes), self.spec.class_names)

    def describe(self) -> str:
        scores = "; outputs scores, softmax applied" if self.outputs_scores else ""
        languages = self.display_names.languages
        names = f"; names in {', '.join(languages)}" if languages else ""
        return (
            f"{self.model_path.name}: {self.spec.height}x{self.spec.width} {self.input_dtype.name} input, "
            f"{self.spec.num_classes} classes, runtime {self.runtime}, spec {self.spec_source}{scores}{names}"
        )

    def quantize_input(self, rgb: np.ndarray) -> np.ndarray:
        """RGB pixels 0-255 [H, W, 3] (uint8 or float) -> the input tensor [1, H, W, 3]."""
        if self._identity_input and rgb.dtype == np.uint8:
            return rgb[None]
        if np.issubdtype(self.input_dtype, np.integer):
            info = np.iinfo(self.input_dtype)
            q = np.round(rgb.astype(np.float32) / self._in_scale + self._in_zero)
            return np.clip(q, info.min, info.max).astype(self.input_dtype)[None]
        return rgb.astype(self.input_dtype)[None]

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        # float64 throughout, as JavaScript computes (the web app gives the same probabilities).
        values: np.ndarray = raw.astype(np.float64)
        if np.issubdtype(self.output_dtype, np.integer) and self._out_scale:
            values = (values - self._out_zero) * self._out_scale
        if self.outputs_scores:
            # Scores (logits): the model's last activation was left out; apply it here.
            # From quantized scores, which every CPU computes to the bit: the same probabilities,
            # to far below any printed digit, on every CPU and in the web app.
            if self._sigmoid_output:
                values = 1.0 / (1.0 + np.exp(-values))
            else:
                shifted = np.exp(values - values.max())
                values = shifted / shifted.sum()
        if self._sigmoid_output:
            values = np.concatenate([1.0 - values, values], axis=-1)
        return values

    def invoke_raw(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on one prepared input tensor; its output tensor as it is [C] (uint8
        scores for hh's int8 models): what the self-test compares step for step."""
        self.interpreter.set_tensor(self._input["index"], tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])[0].copy()

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on one prepared input tensor; class probabilities [C]."""
        return self.dequantize_output(self.invoke_raw(tensor))

    def predict_rgb(self, images: np.ndarray) -> np.ndarray:
        """Model-sized RGB images [N, H, W, 3], pixels 0-255 -> probabilities [N, C]."""
        return np.stack([self.invoke(self.quantize_input(image)) for image in images])

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """An OpenCV frame -> the input tensor (resize, BGR->RGB, quantize)."""
        return self.quantize_input(to_model_rgb(frame_bgr, self.spec))

    def result(self, probabilities: np.ndarray) -> Classification:
        index = int(np.argmax(probabilities))
        return Classification(self.class_names[index], float(probabilities[index]), index, probabilities)

    def classify(self, frame_bgr: np.ndarray) -> Classification:
        """An OpenCV BGR frame -> top label, its probability and all class probabilities."""
        return self.result(self.invoke(self.prepare(frame_bgr)))

    def classify_frame(self, frame_bgr: np.ndarray, smooth=None, quality: QualityThresholds | None = None) -> FrameClassification:
        """classify(), timed stage by stage, behind the image-quality gate when `quality` is
        given. smooth: a function of the raw probabilities (hh-camera's --smooth). A retake
        frame is still classified (its probabilities are reported) but kept out of the
        smoothing, so it does not drag the next labels."""
        t0 = time.perf_counter()
        rgb = to_model_rgb(frame_bgr, self.spec)
        retake = check(measure(rgb), quality) if quality is not None else None
        tensor = self.quantize_input(rgb)
        t1 = time.perf_counter()
        raw = self.invoke(tensor)
        t2 = time.perf_counter()
        result = self.result(smooth(raw) if smooth and retake is None else raw)
        t3 = time.perf_counter()
        return FrameClassification(result, retake, (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000)
