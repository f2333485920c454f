"""The best epoch scored on the validation images, as people look at it: per-class precision,
recall, F1 and support, balanced accuracy and the confusion matrix (evaluation.json,
confusion.png, mistakes.png and reliability.png in the run folder, by hh.edge.evaluate)."""

from __future__ import annotations

import numpy as np

from ..edge.evaluate import write_report
from .data import load_images
from .models import keras_probabilities, load_model_file
from .run_data import RunData
from .run_folder import RunFolder


def evaluate_best(run: RunFolder, data: RunData) -> dict:
    """Score model.keras (the best epoch) on the run's validation images; write the report."""
    model = load_model_file(run.model_path, "the best epoch's model cannot be loaded")
    decoded = data.decoded.get("validation")
    images = decoded.take(data.val.paths) if decoded is not None else None
    if images is None:
        images, _ = load_images(data.val, data.spec)
    labels = np.asarray(data.val.labels, np.int64)
    probabilities = keras_probabilities(model, images, data.spec)
    report = write_report(
        run.path, data.spec.class_names, labels, probabilities, images[..., ::-1], [str(p) for p in data.val.paths]
    )
    return {
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "per_class": report["per_class"],
        "images": int(np.size(labels)),
    }
