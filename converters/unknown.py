"""The `unknown` answer: a score of how unlike the training images a frame is, inside the model.

A classifier trained on leaf diseases names a disease for anything it is shown, and is often
most confident exactly where it has seen nothing. Scores of the classifier's own output (the
largest probability, the largest logit, the energy) cannot tell: measured on hh's small models,
they let most noise, colour fields, patterns and photographs through at a threshold that keeps
95% of the leaves (BENCHMARKS.md 13, "not a leaf"). What does tell is the feature statistics of
every stage of the network (Lee et al. 2018's multi-layer Mahalanobis score, without its input
perturbation): a stage's channels, averaged over the image, follow the training images'
distribution for a leaf photo and leave it for a hand, a wall, the sky or noise.

    for each stage's output (the last activation at each spatial size):
        g = its channels averaged over the image                        [D]
        z = (g - mean) @ L          (L L^T = the inverse covariance: whitened, ~N(0, 1) on training images)
        m = mean(clip(z, -4, 4)^2) / (its median over the training images)
    score = the mean of m over the stages
    unknown's logit = max(class logits) + margin * clip(10 * (score - threshold) / threshold, -1, 1)

The threshold keeps `keep` (95%) of the run's validation images. The unknown logit beats every
class exactly when score > threshold, and lies `margin` (at least 6) below the top class for a
leaf whose score is more than a tenth below the threshold: such a leaf loses at most e^-6
(0.25%) of its probability to `unknown`. Within that tenth the probability moves to `unknown`
gradually (at the threshold itself, half of it). Everything is Dense, mean, clip,
multiply, max and concatenate, ops that run in int8 on LiteRT and LiteRT.js; the clip keeps the
values in a range that 8 bits can resolve (a whitened channel beyond 4 is out of place anyway).
It needs no negative images. The label `unknown` is the model's last output, in labels.txt, so
every reader (MediaPipe included) gives it without knowing any of this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from ..edge.spec import UnknownRule
from .gates import UNKNOWN_KEEP as KEEP  # validation images answered with their class by default

COMPONENT_CLIP = 4.0
MARGIN = 6.0  # logits
STEEPNESS = 10.0  # the unknown logit goes from -margin to +margin within a tenth of the threshold
NOISE_STEPS = 2.0
MIN_THRESHOLD = 1e-3  # a score that small on 95% of the validation images measures nothing
SCORE_NAME = "feature statistics at every stage"


class NoStages(ValueError):
    """The model has nothing this score can measure."""


@dataclass(frozen=True)
class StageStatistics:
    whiten: np.ndarray  # [D, D]: z = g @ whiten + shift
    shift: np.ndarray  # [D]
    scale: float  # the median of the stage's m over the training images


@dataclass(frozen=True)
class UnknownScore:
    stages: tuple[StageStatistics, ...]
    threshold: float
    rule: UnknownRule
    margin: float = MARGIN  # logits: how far below the top class `unknown` stays for a leaf


def _stage_tensors(network: keras.Model) -> list:
    """The last activation at each spatial size (one per stage of the network)."""
    last_at: dict[tuple, object] = {}
    for layer in network.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Rescaling)):
            continue  # the image itself is not a stage
        shape = layer.output.shape
        if len(shape) == 4:
            last_at[tuple(shape[1:3])] = layer.output
    if not last_at:
        raise NoStages("the model has no convolutional stages to take statistics of")
    return list(last_at.values())


def feature_model(model: keras.Model) -> keras.Model:
    """Image -> [the features the classifier head reads, each stage's channels averaged over
    the image], every layer computed once. For a transfer model (a pretrained backbone, then
    pooling and the head) the stages are the backbone's own."""
    from ..trainer.models import BACKBONE

    head = model.layers[-1]
    names = [layer.name for layer in model.layers]
    if BACKBONE not in names:
        stages = _stage_tensors(model)
        pooled = [keras.layers.GlobalAveragePooling2D(name=f"stage{i}_mean")(t) for i, t in enumerate(stages)]
        return keras.Model(model.inputs, [head.input, *pooled], name="features")
    backbone = model.get_layer(BACKBONE)
    inner = keras.Model(backbone.inputs, [backbone.output, *_stage_tensors(backbone)], name="backbone_stages")
    image = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="image")
    top, *stages = inner(image, training=False)
    # Between the backbone and the head only pooling and dropout (identity at inference).
    features = model.get_layer("pool")(top)
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"stage{i}_mean")(t) for i, t in enumerate(stages)]
    return keras.Model(image, [features, *pooled], name="features")


def _stage_statistics(g: np.ndarray, extremes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whiten, shift) for one stage's training means g [N, D]; `extremes`, its means on a
    black and a white frame, set the int8 model's range for them."""
    mean = g.mean(0)
    cov = np.cov(g - mean, rowvar=False).reshape(g.shape[1], g.shape[1])
    # In the int8 model g is rounded to one of 256 steps over the range of every value it took
    # while calibrating (the black and white frames included). A direction of the training
    # spread narrower than that rounding would be whitened into noise: the rounding's variance
    # (step^2 / 12, four times for the rounding of the layers before) joins the covariance.
    step = max(float(g.max()), float(extremes.max())) / 255
    cov += np.eye(len(cov)) * (NOISE_STEPS**2 * step**2 / 12 + 1e-3 * float(np.trace(cov)) / len(cov) + 1e-9)
    whiten = np.linalg.cholesky(np.linalg.inv(cov))
    return whiten, -mean @ whiten


def _stage_terms(g: np.ndarray, whiten: np.ndarray, shift: np.ndarray) -> np.ndarray:
    z = np.clip(g @ whiten + shift, -COMPONENT_CLIP, COMPONENT_CLIP)
    return (z * z).mean(1)


Measure = Callable[[np.ndarray], list[np.ndarray]]  # images -> arrays of values per image


def measure_keras(graph: keras.Model) -> Measure:
    def measure(images: np.ndarray) -> list[np.ndarray]:
        out = graph.predict(np.asarray(images, np.float32), batch_size=32, verbose=0)
        return [np.asarray(o, np.float64) for o in (out if isinstance(out, (list, tuple)) else [out])]

    return measure


def measure_converted(graph: keras.Model, mode: str, calibration: np.ndarray | None) -> Measure:
    """`graph`'s outputs as the model converted to `mode` computes them. Rounding to 8 bits
    (of int8 activations, of int8 weights) moves them, and not at random: fitted on these, the
    statistics and the threshold hold on the device. The layers shared with the exported model
    quantize as they do there: the same float graph, the same calibration images, the same
    ranges."""
    from ai_edge_litert.interpreter import Interpreter

    from ..edge.quiet import native_output_captured
    from .tflite import convert_graph

    names = [f"value{i}" for i in range(len(graph.outputs))]
    image = keras.Input(shape=tuple(graph.inputs[0].shape[1:]), batch_size=1, name="image")
    outputs = graph(image, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    export = keras.Model(image, dict(zip(names, outputs)), name="probe")
    with native_output_captured((1, 2)):
        interpreter = Interpreter(model_content=convert_graph(export, mode, calibration, uint8_output=False))
    runner = interpreter.get_signature_runner()
    integer_input = mode == "int8"

    def measure(images: np.ndarray) -> list[np.ndarray]:
        rows = []
        for pixels in images:
            tensor = np.asarray(pixels, np.uint8 if integer_input else np.float32)[None]
            rows.append(runner(image=tensor))
        return [np.stack([np.asarray(row[name], np.float64).reshape(-1) for row in rows]) for name in names]

    return measure


def measure_for(graph: keras.Model, mode: str, calibration: np.ndarray | None) -> Measure:
    return measure_keras(graph) if mode == "float32" else measure_converted(graph, mode, calibration)


def fit_unknown(
    model: keras.Model,
    train_images: np.ndarray,
    val_images: np.ndarray,
    keep: float = KEEP,
    mode: str = "float32",
    calibration: np.ndarray | None = None,
    logit_range: float | None = None,
    already_unknown: np.ndarray | None = None,
) -> UnknownScore:
    """Statistics from the training images, the threshold from the validation images, both
    measured on the model as `mode` computes it (calibration: int8's calibration images).

    already_unknown: which validation images the model answers unknown by itself (its class
    trained from negatives); the threshold keeps `keep` of them all, theirs counted.

    logit_range: the spread of the class logits. The int8 output holds the class logits and
    `unknown`'s on one grid of 256 steps; the margin grows with the spread (to a fifth of it) so
    that the decision "score above threshold" is resolved to a few percent of the threshold."""
    if not 0.5 <= keep < 1.0:
        raise ValueError(f"keep must be in [0.5, 1), got {keep}")
    features = feature_model(model)
    means = keras.Model(features.inputs, features.outputs[1:], name="stage_means")
    measure = measure_for(means, mode, calibration)
    height, width = train_images.shape[1:3]
    extremes = measure(np.stack([np.full((height, width, 3), level, np.float32) for level in (0.0, 255.0)]))
    stages = []
    for g, extreme in zip(measure(train_images), extremes):
        whiten, shift = _stage_statistics(g, extreme)
        median = float(np.median(_stage_terms(g, whiten, shift)))
        stages.append(StageStatistics(whiten.astype(np.float32), shift.astype(np.float32), max(median, 1e-6)))
    stages_t = tuple(stages)
    # The threshold from the score as the converted model computes it, whitening and all.
    pooled = features.outputs[1:]
    score = keras.Model(features.inputs, score_tensor(pooled, stages_t), name="unknown_score")
    validation = measure_for(score, mode, calibration)(val_images)[0].reshape(-1)
    threshold = keep_threshold(validation, keep, already_unknown)
    if not threshold > MIN_THRESHOLD:
        raise NoStages("its stages do not vary over the validation images")
    rule = UnknownRule(
        score=SCORE_NAME,
        threshold=round(threshold, 6),
        keep=keep,
        calibrated_on=len(val_images),
        fitted_on=len(train_images),
    )
    margin = max(MARGIN, 0.2 * logit_range) if logit_range else MARGIN
    return UnknownScore(stages_t, threshold, rule, margin)


def keep_threshold(scores: np.ndarray, keep: float, already_unknown: np.ndarray | None = None) -> float:
    """The score above which an image is unknown, such that `keep` of these images are answered
    with a class. Images the model answers unknown already count against `keep`: when they are
    as many as it allows, the threshold lies where every other image is more than a tenth
    inside it (the score then adds nothing on these images, only beyond them)."""
    if already_unknown is None or not already_unknown.any():
        return float(np.quantile(scores, keep))
    rest = scores[~already_unknown]
    more = round((1 - keep) * len(scores)) - int(already_unknown.sum())
    if len(rest) == 0 or more <= 0:
        return float(rest.max() if len(rest) else scores.max()) / (1 - 1 / STEEPNESS)
    return float(np.quantile(rest, 1 - more / len(rest)))


def score_tensor(pooled: list, stages: tuple[StageStatistics, ...]):
    """The unknown score, as layers on the stage means `pooled` (feature_model's outputs
    after the first)."""
    terms = []
    for i, (g, stage) in enumerate(zip(pooled, stages)):
        dense = keras.layers.Dense(stage.whiten.shape[1], name=f"stage{i}_whiten", trainable=False)
        z = keras.ops.clip(dense(g), -COMPONENT_CLIP, COMPONENT_CLIP)
        dense.set_weights([stage.whiten, stage.shift])
        terms.append(keras.ops.mean(z * z, axis=-1, keepdims=True) * (1.0 / (stage.scale * len(stages))))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def unknown_logit(pooled: list, logits, score: UnknownScore):
    """The unknown label's logit, as layers on the stage means and the class logits."""
    relative = (score_tensor(pooled, score.stages) - score.threshold) * (STEEPNESS / score.threshold)
    excess = keras.ops.clip(relative, -1.0, 1.0)
    return keras.ops.max(logits, axis=-1, keepdims=True) + score.margin * excess
