"""Prove a converted model: run it against its Keras source on held-out images.

The gate behind hh-convert: a .tflite whose top-1 answers agree with the Keras model's on
less than `min_agreement` of the images is refused. Both models see the same pixels (the
training loader's, which tests/test_edge.py proves equal to the device's), so any
disagreement is the conversion's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..edge.errors import UserError
from ..edge.folders import ImageFolder
from ..edge.runtime import Classifier
from ..edge.spec import PreprocessingSpec
from ..trainer.models import keras_probabilities

log = logging.getLogger("hh.convert")


@dataclass(frozen=True)
class VerificationInput:
    keras_model: object  # a loaded keras.Model
    tflite_path: Path
    spec: PreprocessingSpec
    images: ImageFolder  # held-out images with their labels
    min_agreement: float
    max_prob_diff: float = 1.0
    max_recall_drop: float = 1.0
    # The column of the `unknown` the converted model answers itself (hh.converters.unknown), if any.
    unknown_column: int | None = None


@dataclass(frozen=True)
class Verification:
    images: int
    keras_accuracy: float
    tflite_accuracy: float
    agreement: float  # share of images where both models give the same top-1 class
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    min_agreement: float
    max_prob_diff: float = 1.0  # the most any probability may differ from Keras's
    kept: float = 1.0  # share of the images the converted model answers with a class, not unknown
    kept_of: int = 0  # the images `kept` counts: those of the classes proper (not a trained 'unknown''s)
    keras_balanced_accuracy: float = 1.0  # the mean per-class recall of the Keras model, over the classes proper
    classes: int = 2  # how many classes that is over
    recall_drop: float = 0.0  # the most any class's recall is below Keras's
    recall_drop_class: str = ""
    max_recall_drop: float = 1.0
    keras_weakest_class: str = ""  # the class the Keras model finds least often, and its recall
    keras_weakest_recall: float = 1.0

    @property
    def passed(self) -> bool:
        return (
            self.agreement >= self.min_agreement
            and self.max_abs_prob_diff <= self.max_prob_diff
            and self.recall_drop <= self.max_recall_drop + 1e-9
        )

    @property
    def accuracies(self) -> str:
        return f"keras accuracy {self.keras_accuracy:.3f}, converted {self.tflite_accuracy:.3f}"

    def why_refused(self) -> str:
        if self.agreement < self.min_agreement:
            return (
                f"agrees with Keras on {self.agreement:.3f} of {self.images} images, "
                f"below {{param:min_agreement}} {self.min_agreement:.2f} ({self.accuracies})"
            )
        if self.recall_drop > self.max_recall_drop + 1e-9:
            return (
                f"finds {self.recall_drop_class!r} in {self.recall_drop:.3f} fewer of its images than Keras does "
                f"(more than {{param:max_recall_drop}} {self.max_recall_drop:.2f}; top-1 agreement {self.agreement:.3f}, "
                f"{self.accuracies})"
            )
        return (
            f"gives probabilities up to {self.max_abs_prob_diff:.3f} from Keras's on {self.images} images, "
            f"more than {{param:max_prob_diff}} {self.max_prob_diff:.2f} (the top-1 answers agree on {self.agreement:.3f}, "
            f"{self.accuracies})"
        )


def among_classes(probabilities: np.ndarray, unknown_column: int | None) -> np.ndarray:
    """The classes' probabilities among themselves, without the model's `unknown` column; the
    outputs as they are when it has none (they may be scores, not probabilities)."""
    if unknown_column is None:
        return probabilities
    kept = np.delete(probabilities, unknown_column, axis=1)
    return kept / np.maximum(kept.sum(1, keepdims=True), 1e-300)


def verify(given: VerificationInput) -> Verification:
    from ..trainer.data import load_images

    if given.images.class_names != given.spec.class_names:
        raise UserError(
            f"evaluation folder {given.images.root} has classes {given.images.class_names}, the model {given.spec.class_names}"
        )
    log.info(f"verifying on {len(given.images)} images from {given.images.root}")
    classifier = Classifier(given.tflite_path, num_threads=2)
    images, labels = load_images(given.images, given.spec)
    keras_answers = keras_probabilities(given.keras_model, images, given.spec)
    answers = classifier.predict_rgb(images)
    names = given.spec.class_names
    u = given.unknown_column
    kept, kept_of = 1.0, len(labels)
    if u is not None:
        # A model that answers `unknown` itself (its score, with or without a class trained
        # from negatives) is held to Keras on the images of the classes proper, their
        # probabilities among themselves; how often it answers unknown for them is `kept`.
        leaves = labels != u
        kept, kept_of = (float(np.mean(answers[leaves].argmax(1) != u)) if leaves.any() else 1.0), int(leaves.sum())
        answers, keras_answers, labels = answers[leaves], keras_answers[leaves], labels[leaves]
        names = tuple(name for c, name in enumerate(names) if c != u)
    tflite_probs, keras_probs = among_classes(answers, u), among_classes(keras_answers, u)
    keras_top, tflite_top = keras_probs.argmax(1), tflite_probs.argmax(1)
    keras_recalls = {c: float(np.mean(keras_top[labels == c] == c)) for c in range(len(names)) if np.any(labels == c)}
    drops = {names[c]: recall - float(np.mean(tflite_top[labels == c] == c)) for c, recall in keras_recalls.items()}
    worst = max(drops, key=lambda name: drops[name]) if drops else ""
    weakest = min(keras_recalls, key=lambda c: keras_recalls[c]) if keras_recalls else None
    diff = np.abs(keras_probs - tflite_probs)
    return Verification(
        images=len(labels),
        keras_accuracy=float(np.mean(keras_top == labels)),
        tflite_accuracy=float(np.mean(tflite_top == labels)),
        agreement=float(np.mean(keras_top == tflite_top)),
        max_abs_prob_diff=float(diff.max()),
        mean_abs_prob_diff=float(diff.mean()),
        min_agreement=given.min_agreement,
        max_prob_diff=given.max_prob_diff,
        kept=kept,
        kept_of=kept_of,
        keras_balanced_accuracy=float(np.mean(list(keras_recalls.values()))) if keras_recalls else 0.0,
        classes=len(names),
        recall_drop=max(0.0, drops.get(worst, 0.0)),
        recall_drop_class=worst,
        max_recall_drop=given.max_recall_drop,
        keras_weakest_class=names[weakest] if weakest is not None else "",
        keras_weakest_recall=keras_recalls[weakest] if weakest is not None else 1.0,
    )
